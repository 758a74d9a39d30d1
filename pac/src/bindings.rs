//! Adapts the PAC functions to boa: registers each helper as a native global function, runs the
//! JS prelude (date predicates), and carries the per-worker environment (DNS service, lookup
//! budget, cancel flag) in the context's host data. Argument quirks follow the spec (§2, §3).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use boa_engine::error::RuntimeLimitError;
use boa_engine::object::builtins::JsRegExp;
use boa_engine::string::JsStrVariant;
use boa_engine::{
    js_string, Context, JsNativeError, JsResult, JsString, JsValue, NativeFunction, Source,
};

use crate::dns::{DnsService, Resolved};
use crate::helpers;

/// Where `alert()` lines go: the log in-process; a frame to the parent in a worker process.
pub(crate) type AlertSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The default sink: the log, target `waypost_pac::alert`.
pub(crate) fn log_alerts() -> AlertSink {
    Arc::new(|line: &str| tracing::info!(target: "waypost_pac::alert", "{line}"))
}

/// The per-worker state natives reach through `Context::get_data`.
pub(crate) struct ScriptEnv {
    pub dns: Arc<DnsService>,
    /// DNS lookups left in the current evaluation.
    pub budget: Cell<u32>,
    /// Set by the engine when this worker is abandoned: natives then abort the script with an
    /// uncatchable engine error.
    pub cancel: Arc<AtomicBool>,
    alerts: AlertSink,
    /// Alert lines left in the current evaluation.
    alerts_left: Cell<u32>,
    /// Longest alert line (bytes); longer ones are cut.
    alert_max_bytes: usize,
    /// Per-second rate cap: (start of the current second, lines logged in it).
    alert_window: Cell<(std::time::Instant, u32)>,
    alert_per_second: u32,
}

impl ScriptEnv {
    pub fn new(
        dns: Arc<DnsService>,
        options: &crate::PacOptions,
        cancel: Arc<AtomicBool>,
        alerts: AlertSink,
    ) -> ScriptEnv {
        ScriptEnv {
            dns,
            budget: Cell::new(options.dns_budget),
            cancel,
            alerts,
            alerts_left: Cell::new(options.alert_max_per_call),
            alert_max_bytes: options.alert_max_bytes,
            alert_window: Cell::new((std::time::Instant::now(), 0)),
            alert_per_second: options.alert_max_per_second,
        }
    }

    /// Resets the per-evaluation budgets.
    pub fn start_call(&self, options: &crate::PacOptions) {
        self.budget.set(options.dns_budget);
        self.alerts_left.set(options.alert_max_per_call);
    }

    /// Logs one alert line within the caps: a line is cut at `alert_max_bytes`; past
    /// `alert_max_per_call` lines in one evaluation or `alert_max_per_second` lines in a
    /// second, lines are dropped (one notice says so).
    fn alert(&self, text: &str) {
        let left = self.alerts_left.get();
        if left == 0 {
            return;
        }
        let now = std::time::Instant::now();
        let (since, count) = self.alert_window.get();
        let (since, count) = if now.duration_since(since) >= std::time::Duration::from_secs(1) {
            (now, 0)
        } else {
            (since, count)
        };
        if count >= self.alert_per_second {
            return;
        }
        self.alert_window.set((since, count + 1));
        self.alerts_left.set(left - 1);
        if left == 1 || count + 1 == self.alert_per_second {
            (self.alerts)("(further alert() lines are dropped: over the cap)");
            return;
        }
        (self.alerts)(&cut(text, self.alert_max_bytes));
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), saying how much was cut.
fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}... ({} more bytes)",
        &text[..end],
        text.len() - end
    ))
}

/// Every function a PAC script may call, for `pac check` reports.
pub const PAC_FUNCTIONS: &[&str] = &[
    "isPlainHostName",
    "dnsDomainIs",
    "localHostOrDomainIs",
    "isResolvable",
    "isInNet",
    "dnsResolve",
    "convert_addr",
    "myIpAddress",
    "dnsDomainLevels",
    "shExpMatch",
    "weekdayRange",
    "dateRange",
    "timeRange",
    "alert",
    "isResolvableEx",
    "isInNetEx",
    "dnsResolveEx",
    "myIpAddressEx",
    "sortIpAddressList",
    "getClientVersion",
];

type Native = fn(&JsValue, &[JsValue], &mut Context) -> JsResult<JsValue>;

/// Registers the natives and runs the prelude in a fresh context.
pub(crate) fn install(context: &mut Context) -> JsResult<()> {
    context.insert_data(RegexCache::default());
    let natives: [(&str, usize, Native); 17] = [
        ("isPlainHostName", 1, is_plain_host_name),
        ("dnsDomainIs", 2, dns_domain_is),
        ("localHostOrDomainIs", 2, local_host_or_domain_is),
        ("isResolvable", 1, is_resolvable),
        ("isInNet", 3, is_in_net),
        ("dnsResolve", 1, dns_resolve),
        ("convert_addr", 1, convert_addr),
        ("myIpAddress", 0, my_ip_address),
        ("dnsDomainLevels", 1, dns_domain_levels),
        ("shExpMatch", 2, sh_exp_match),
        ("alert", 1, alert),
        ("isResolvableEx", 1, is_resolvable_ex),
        ("isInNetEx", 2, is_in_net_ex),
        ("dnsResolveEx", 1, dns_resolve_ex),
        ("myIpAddressEx", 0, my_ip_address_ex),
        ("sortIpAddressList", 1, sort_ip_address_list),
        ("getClientVersion", 0, get_client_version),
    ];
    for (name, length, f) in natives {
        context.register_global_callable(
            JsString::from(name),
            length,
            NativeFunction::from_fn_ptr(f),
        )?;
    }
    let prelude = Source::from_bytes(include_str!("prelude.js"))
        .with_path(std::path::Path::new("prelude.js"));
    context.eval(prelude)?;
    Ok(())
}

fn check_cancel(context: &Context) -> JsResult<()> {
    match context.get_data::<ScriptEnv>() {
        Some(env) if env.cancel.load(Ordering::Relaxed) => {
            Err(RuntimeLimitError::LoopIteration.into())
        }
        _ => Ok(()),
    }
}

/// The Rust text of a JS string: borrowed for pure-ASCII Latin-1 strings (what PAC scripts
/// pass almost always), else `to_std_string_escaped` (the same text the slow path always gave).
fn text_of(s: &JsString) -> Cow<'_, str> {
    if let JsStrVariant::Latin1(bytes) = s.as_str().variant() {
        if bytes.is_ascii() {
            // ASCII bytes are valid UTF-8, so this never takes the fallback branch.
            if let Ok(text) = std::str::from_utf8(bytes) {
                return Cow::Borrowed(text);
            }
        }
    }
    Cow::Owned(s.to_std_string_escaped())
}

/// The argument when it is a string (no conversion), else `None`.
fn str_arg(args: &[JsValue], i: usize) -> Option<JsString> {
    args.get(i).and_then(JsValue::as_string)
}

/// JS `ToString` of an argument (`undefined` when missing).
fn to_str(args: &[JsValue], i: usize, context: &mut Context) -> JsResult<JsString> {
    match args.get(i) {
        Some(v) => v.to_string(context),
        None => Ok(js_string!("undefined")),
    }
}

fn string(s: impl AsRef<str>) -> JsValue {
    JsValue::from(JsString::from(s.as_ref()))
}

fn resolve(name: &str, context: &Context) -> Resolved {
    match context.get_data::<ScriptEnv>() {
        Some(env) => env.dns.resolve(name, &env.budget),
        None => Resolved::NotFound,
    }
}

fn first_v4(ips: &[IpAddr]) -> Option<IpAddr> {
    ips.iter().copied().find(IpAddr::is_ipv4)
}

fn is_plain_host_name(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let host = str_arg(args, 0)
        .ok_or_else(|| JsNativeError::typ().with_message("Requires 1 string parameter"))?;
    Ok(helpers::is_plain_host_name(&text_of(&host)).into())
}

fn dns_domain_is(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let (host, domain) = (to_str(args, 0, ctx)?, to_str(args, 1, ctx)?);
    Ok(helpers::dns_domain_is(&text_of(&host), &text_of(&domain)).into())
}

fn local_host_or_domain_is(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let (host, hostdom) = (to_str(args, 0, ctx)?, to_str(args, 1, ctx)?);
    Ok(helpers::local_host_or_domain_is(&text_of(&host), &text_of(&hostdom)).into())
}

fn dns_domain_levels(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let host = to_str(args, 0, ctx)?;
    Ok(JsValue::from(
        helpers::dns_domain_levels(&text_of(&host)) as u32
    ))
}

fn convert_addr(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let ip = to_str(args, 0, ctx)?;
    Ok(JsValue::from(helpers::convert_addr(&text_of(&ip))))
}

/// Compiled `shExpMatch` RegExps of one context, by shell expression. A RegExp without the
/// `g`/`y` flags keeps no state between `test` calls (its `lastIndex` is neither read for the
/// match nor written), so reusing one is the same as the spec's `new RegExp(...)` per call.
#[derive(Default)]
pub(crate) struct RegexCache {
    map: RefCell<HashMap<String, JsRegExp>>,
}

/// Distinct patterns kept per context; scripts use a handful, a script generating patterns
/// only refills the cache.
const REGEX_CACHE_SIZE: usize = 256;

fn sh_exp_match(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let (s, pattern) = (to_str(args, 0, ctx)?, to_str(args, 1, ctx)?);
    let (text, pattern) = (text_of(&s), text_of(&pattern));
    if helpers::shexp_is_simple(&pattern) {
        return Ok(helpers::shexp_match_simple(&text, &pattern).into());
    }
    let cached = ctx
        .get_data::<RegexCache>()
        .and_then(|c| c.map.borrow().get(pattern.as_ref()).cloned());
    let re = match cached {
        Some(re) => re,
        None => {
            let re = JsRegExp::new(string(helpers::shexp_to_regexp(&pattern)), string(""), ctx)?;
            if let Some(cache) = ctx.get_data::<RegexCache>() {
                let mut map = cache.map.borrow_mut();
                if map.len() >= REGEX_CACHE_SIZE {
                    map.clear();
                }
                map.insert(pattern.clone().into_owned(), re.clone());
            }
            re
        }
    };
    // The subject as the script gave it when `text` is its exact copy, else the text (as before).
    let subject = match &text {
        Cow::Borrowed(_) => s.clone(),
        Cow::Owned(t) => JsString::from(t.as_str()),
    };
    Ok(re.test(subject, ctx)?.into())
}

/// `dnsResolve`: IPv4 only; non-string argument gives `null` without resolving.
fn dns_resolve(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let Some(host) = str_arg(args, 0) else {
        return Ok(JsValue::null());
    };
    Ok(match resolve(&text_of(&host), ctx) {
        Resolved::Found(ips) => first_v4(&ips).map_or(JsValue::null(), |ip| string(ip.to_string())),
        _ => JsValue::null(),
    })
}

fn is_resolvable(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let Some(host) = str_arg(args, 0) else {
        return Ok(false.into());
    };
    Ok(
        matches!(resolve(&text_of(&host), ctx), Resolved::Found(ips) if first_v4(&ips).is_some())
            .into(),
    )
}

/// `dnsResolveEx`: all addresses `;`-joined, `""` on failure, `undefined` for a non-string.
fn dns_resolve_ex(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let Some(host) = str_arg(args, 0) else {
        return Ok(JsValue::undefined());
    };
    Ok(match resolve(&text_of(&host), ctx) {
        Resolved::Found(ips) => string(join(&ips)),
        _ => string(""),
    })
}

fn is_resolvable_ex(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let Some(host) = str_arg(args, 0) else {
        return Ok(false.into());
    };
    Ok(matches!(resolve(&text_of(&host), ctx), Resolved::Found(_)).into())
}

/// `isInNet(host, pattern, mask)`: pattern and mask must be dotted quads; host names resolve
/// through IPv4-only `dnsResolve`.
fn is_in_net(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let (Some(pattern), Some(mask)) = (
        str_arg(args, 1).and_then(|p| helpers::parse_pac_ipv4(&text_of(&p))),
        str_arg(args, 2).and_then(|m| helpers::parse_pac_ipv4(&text_of(&m))),
    ) else {
        return Ok(false.into());
    };
    let Some(host) = str_arg(args, 0) else {
        return Ok(false.into());
    };
    let host = text_of(&host);
    let addr = match helpers::parse_pac_ipv4(&host) {
        Some(a) => a,
        None => match resolve(&host, ctx) {
            Resolved::Found(ips) => match first_v4(&ips) {
                Some(IpAddr::V4(a)) => a,
                _ => return Ok(false.into()),
            },
            _ => return Ok(false.into()),
        },
    };
    Ok(helpers::in_net(addr, pattern, mask).into())
}

/// `isInNetEx(ip, prefix)`: `null` unless given two strings.
fn is_in_net_ex(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let (Some(ip), Some(prefix)) = (str_arg(args, 0), str_arg(args, 1)) else {
        return Ok(JsValue::null());
    };
    let (ip, prefix) = (text_of(&ip), text_of(&prefix));
    if !ip.is_ascii() || !prefix.is_ascii() {
        return Ok(false.into());
    }
    Ok(helpers::is_in_net_ex(&ip, &prefix).into())
}

fn my_ips(ctx: &Context) -> Vec<IpAddr> {
    ctx.get_data::<ScriptEnv>()
        .map(|e| e.dns.my_ips())
        .unwrap_or_default()
}

/// `myIpAddress`: the routed address, preferring IPv4; `127.0.0.1` only when nothing else exists.
fn my_ip_address(_: &JsValue, _: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let ips = my_ips(ctx);
    let ip = first_v4(&ips).or_else(|| ips.first().copied());
    Ok(string(ip.map_or_else(
        || "127.0.0.1".to_string(),
        |ip| ip.to_string(),
    )))
}

fn my_ip_address_ex(_: &JsValue, _: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    Ok(string(join(&my_ips(ctx))))
}

/// `sortIpAddressList`: `null` for a non-string, `false` when a token is not an address.
fn sort_ip_address_list(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let Some(list) = str_arg(args, 0) else {
        return Ok(JsValue::null());
    };
    Ok(helpers::sort_ip_address_list(&text_of(&list)).map_or(false.into(), string))
}

fn get_client_version(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    Ok(JsValue::from(js_string!("1.0")))
}

/// `alert`: logs its argument (ToString; `undefined` when missing), within the caps of
/// [`ScriptEnv::alert`]; returns `undefined`.
fn alert(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    check_cancel(ctx)?;
    let message = to_str(args, 0, ctx)?;
    if let Some(env) = ctx.get_data::<ScriptEnv>() {
        env.alert(&text_of(&message));
    }
    Ok(JsValue::undefined())
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod alert_tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn alert_lines_are_cut_and_capped_per_evaluation() {
        let options = crate::PacOptions {
            no_dns: true,
            alert_max_bytes: 10,
            alert_max_per_call: 3,
            ..crate::PacOptions::default()
        };
        let dns = Arc::new(DnsService::new(
            &options,
            crate::metrics::Metrics::new(None),
        ));
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let env = ScriptEnv::new(
            dns,
            &options,
            Arc::new(AtomicBool::new(false)),
            Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())),
        );
        let big = "é".repeat(1_000_000);
        for _ in 0..10 {
            env.alert(&big);
        }
        let got = lines.lock().unwrap().clone();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].starts_with("ééééé...") && got[0].len() < 64,
            "{}",
            got[0]
        );
        assert!(got[2].contains("dropped"));
        env.start_call(&options);
        env.alert("short");
        assert_eq!(lines.lock().unwrap().last().unwrap(), "short");
    }
}
