//! Body types shared by the server and the upstream side.
//!
//! The proxy speaks one boxed body type in both directions so that streamed origin bodies, pooled
//! response bodies and small synthetic answers can be mixed freely. Nothing here buffers a body.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|e| match e {}).boxed()
}

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}
