//! CRL downloads for the TLS policy: the [`waypost_tls::CrlFetch`] installed into the dialer's
//! policy right after the dialer is built, a GET through [`HttpClient`], so CRLs share the
//! dialer's resolver, timeouts and loop guard instead of a client of their own.
//!
//! The dialer owns the policy, which owns this downloader, so it holds the client weakly and
//! fails once the dialer is gone. Only `http://` distribution points are fetched, only a 200
//! counts, and the body is capped at the policy's `crl_fetch.max_bytes`; the policy bounds
//! each download by `crl_fetch.timeout`.

use std::sync::Arc;

use http::{StatusCode, Uri};
use waypost_tls::{CrlDownload, CrlFetch};

use super::client::{HttpClient, WeakHttpClient};
use super::dialer::Dialer;

/// Downloads CRLs over a dialer it does not keep alive.
pub struct CrlDownloader {
    client: WeakHttpClient,
}

impl CrlDownloader {
    /// Routes the CRL downloads of `dialer`'s TLS policy through `dialer`.
    pub fn install(dialer: &Arc<Dialer>) {
        let client = HttpClient::new(dialer.clone()).downgrade();
        dialer
            .tls
            .set_crl_fetcher(Arc::new(CrlDownloader { client }));
    }
}

impl CrlFetch for CrlDownloader {
    fn get(&self, url: String, max: usize) -> CrlDownload {
        let client = self.client.upgrade();
        Box::pin(async move {
            let client = client.ok_or("the dialer is gone (waypost is shutting down)")?;
            download(&client, &url, max).await
        })
    }
}

async fn download(client: &HttpClient, url: &str, max: usize) -> Result<Vec<u8>, String> {
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return Err("only http:// distribution points are fetched".into());
    }
    let got = client
        .get(url, "application/pkix-crl, */*;q=0.1", max)
        .await?;
    if got.status != StatusCode::OK {
        return Err(format!("HTTP status {}", got.status));
    }
    Ok(got.body.into())
}
