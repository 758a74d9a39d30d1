//! Every PAC function called from a script, with the spec's edge cases (PAC-SPEC §2, §3).
//! Values are written from the spec, not copied from other test suites.

use crate::common;

use common::{js, js_with, options};
use waypost_pac::{PacEngine, PacOptions, PAC_FUNCTIONS};

async fn check(cases: &[(&str, &str)]) {
    for (expr, want) in cases {
        assert_eq!(js(expr).await, *want, "{expr}");
    }
}

fn at(now: &str, tz: &str) -> PacOptions {
    let ts: jiff::Timestamp = now.parse().unwrap();
    PacOptions {
        fixed_now_ms: Some(ts.as_millisecond()),
        time_zone: Some(tz.into()),
        ..options()
    }
}

async fn check_at(now: &str, tz: &str, cases: &[(&str, &str)]) {
    for (expr, want) in cases {
        let got = js_with(expr, at(now, tz))
            .await
            .unwrap_or_else(|e| format!("error:{e}"));
        assert_eq!(got, *want, "{expr} at {now} {tz}");
    }
}

#[tokio::test]
async fn every_pac_function_is_defined() {
    for name in PAC_FUNCTIONS {
        assert_eq!(
            js(&format!("typeof {name}")).await,
            "string:function",
            "{name}"
        );
    }
}

#[tokio::test]
async fn is_plain_host_name_throws_a_type_error_for_non_strings() {
    check(&[
        ("isPlainHostName('www')", "boolean:true"),
        ("isPlainHostName('www.example.com')", "boolean:false"),
        ("isPlainHostName('::1')", "boolean:false"),
        ("isPlainHostName('[::1]')", "boolean:true"),
        ("isPlainHostName('foo:112')", "boolean:true"),
        ("isPlainHostName('www', 'extra')", "boolean:true"),
    ])
    .await;
    for expr in [
        "isPlainHostName()",
        "isPlainHostName(null)",
        "isPlainHostName(5)",
    ] {
        assert!(
            js(expr).await.contains("Requires 1 string parameter"),
            "{expr}"
        );
    }
}

#[tokio::test]
async fn domain_predicates_are_case_sensitive_string_tests() {
    check(&[
        (
            "dnsDomainIs('www.netscape.com', '.netscape.com')",
            "boolean:true",
        ),
        ("dnsDomainIs('notanz.com', 'anz.com')", "boolean:true"),
        (
            "dnsDomainIs('www.NETSCAPE.com', '.netscape.com')",
            "boolean:false",
        ),
        (
            "localHostOrDomainIs('www', 'www.netscape.com')",
            "boolean:true",
        ),
        (
            "localHostOrDomainIs('home.netscape.com', 'www.netscape.com')",
            "boolean:false",
        ),
        ("dnsDomainLevels('a.b.')", "number:2"),
        ("dnsDomainLevels('')", "number:0"),
        ("convert_addr('192.168.1.1')", "number:-1062731519"),
        ("convert_addr('255.255.255.255')", "number:-1"),
    ])
    .await;
}

#[tokio::test]
async fn dns_resolve_is_ipv4_only_and_null_on_failure() {
    check(&[
        ("dnsResolve('intranet.example')", "string:10.1.2.3"),
        ("dnsResolve('INTRANET.example')", "string:10.1.2.3"),
        ("dnsResolve('dual.example')", "string:10.9.9.9"),
        ("dnsResolve('v6only.example')", "object:null"),
        ("dnsResolve('nx.example')", "object:null"),
        ("dnsResolve('10.0.0.1')", "string:10.0.0.1"),
        ("dnsResolve()", "object:null"),
        ("dnsResolve(null)", "object:null"),
        ("dnsResolve({})", "object:null"),
        ("isResolvable('intranet.example')", "boolean:true"),
        ("isResolvable('v6only.example')", "boolean:false"),
    ])
    .await;
}

#[tokio::test]
async fn the_ipv6_extensions_follow_chromium_argument_rules() {
    check(&[
        (
            "dnsResolveEx('dual.example')",
            "string:2001:db8::5;10.9.9.9",
        ),
        ("dnsResolveEx('nx.example')", "string:"),
        ("dnsResolveEx(5)", "undefined:undefined"),
        ("isResolvableEx('v6only.example')", "boolean:true"),
        ("isResolvableEx('nx.example')", "boolean:false"),
        (
            "isInNetEx('198.95.249.79', '198.95.0.0/16')",
            "boolean:true",
        ),
        (
            "isInNetEx('3ffe:8311:ffff::1', '3ffe:8311:ffff/48')",
            "boolean:false",
        ),
        ("isInNetEx('1.2.3.4')", "object:null"),
        (
            "sortIpAddressList('10.2.3.9;2001:4898::1;::1')",
            "string:::1;2001:4898::1;10.2.3.9",
        ),
        ("sortIpAddressList('10.2.3.9;bogus')", "boolean:false"),
        ("sortIpAddressList()", "object:null"),
        ("getClientVersion()", "string:1.0"),
        ("myIpAddress()", "string:192.0.2.10"),
        ("myIpAddressEx()", "string:192.0.2.10;2001:db8::10"),
    ])
    .await;
}

#[tokio::test]
async fn is_in_net_validates_pattern_and_mask_and_resolves_names() {
    check(&[
        (
            "isInNet('intranet.example', '10.0.0.0', '255.0.0.0')",
            "boolean:true",
        ),
        (
            "isInNet('010.001.002.003', '10.1.0.0', '255.255.0.0')",
            "boolean:true",
        ),
        (
            "isInNet('10.1.2.3', '10.0.0', '255.0.0.0')",
            "boolean:false",
        ),
        (
            "isInNet('10.1.2.3', '10.0.0.0', '255.255.255.256')",
            "boolean:false",
        ),
        (
            "isInNet('nx.example', '0.0.0.0', '0.0.0.0')",
            "boolean:false",
        ),
        ("isInNet('::1', '0.0.0.0', '0.0.0.0')", "boolean:false"),
        ("isInNet(null, '0.0.0.0', '0.0.0.0')", "boolean:false"),
        ("isInNet(false, false, false)", "boolean:false"),
    ])
    .await;
}

#[tokio::test]
async fn sh_exp_match_passes_regexp_metacharacters_through() {
    check(&[
        (
            "shExpMatch('http://home.netscape.com/people/ari/index.html', '*/ari/*')",
            "boolean:true",
        ),
        ("shExpMatch('ab.com', 'a+b.com')", "boolean:true"),
        ("shExpMatch('a+b.com', 'a+b.com')", "boolean:false"),
        ("shExpMatch('x.com', '[xy].com')", "boolean:true"),
        ("shExpMatch('abc', 'abc|xyz')", "boolean:true"),
        ("shExpMatch('a$b', 'a$b')", "boolean:false"),
        (
            "shExpMatch('www.abcdomain.com', '(*.abcdomain.com|abcdomain.com)')",
            "boolean:true",
        ),
        ("shExpMatch('A.com', 'a.com')", "boolean:false"),
    ])
    .await;
    assert!(js("shExpMatch('(', '(')").await.contains("SyntaxError"));
}

#[tokio::test]
async fn sh_exp_match_gives_the_same_answers_on_repeated_and_mixed_calls() {
    // Compiled RegExps are reused per pattern: repeated calls must not carry state over, and
    // a pattern that fails to compile keeps failing.
    check(&[
        (
            "[1,2,3].map(function(){ return shExpMatch('x.com', '[xy].com') + ',' + \
             shExpMatch('z.com', '[xy].com') + ',' + shExpMatch('y.com', '[xy].com'); }).join(';')",
            "string:true,false,true;true,false,true;true,false,true",
        ),
        (
            "shExpMatch('http://elearning.bmf.gv.at/kurs', 'http*://elearning.bmf.gv.at*') + ',' + \
             shExpMatch('https://elearning.bmf.gv.at', 'http*://elearning.bmf.gv.at*') + ',' + \
             shExpMatch('http:/elearning.bmf.gv.at', 'http*://elearning.bmf.gv.at*') + ',' + \
             shExpMatch('a\\nb/c', 'a*/c')",
            "string:true,true,false,false",
        ),
        (
            "(function () { var n = 0; for (var i = 0; i < 3; i++) { try { shExpMatch('(', '('); } \
             catch (e) { if (e instanceof SyntaxError) n++; } } return n; })()",
            "number:3",
        ),
    ])
    .await;
}

#[tokio::test]
async fn alert_logs_and_returns_undefined() {
    check(&[
        ("alert('hello')", "undefined:undefined"),
        ("alert()", "undefined:undefined"),
    ])
    .await;
}

#[tokio::test]
async fn weekday_range_wraps_around_the_week() {
    // 2024-05-07 is a Tuesday.
    check_at(
        "2024-05-07T12:00:00Z",
        "UTC",
        &[
            ("weekdayRange('TUE')", "boolean:true"),
            ("weekdayRange('SAT', 'WED')", "boolean:true"),
            ("weekdayRange('FRI', 'MON')", "boolean:false"),
            ("weekdayRange('MON', 'FRI')", "boolean:true"),
            ("weekdayRange('tue')", "boolean:false"),
            ("weekdayRange()", "boolean:false"),
        ],
    )
    .await;
    check_at(
        "2024-05-05T12:00:00Z",
        "UTC",
        &[("weekdayRange('FRI', 'MON')", "boolean:true")],
    )
    .await;
}

#[tokio::test]
async fn gmt_selects_utc_and_the_zone_moves_local_time() {
    // 23:30 UTC on Tuesday is 01:30 on Wednesday in Berlin (UTC+2 in May).
    check_at(
        "2024-05-07T23:30:00Z",
        "Europe/Berlin",
        &[
            ("weekdayRange('WED')", "boolean:true"),
            ("weekdayRange('TUE', 'GMT')", "boolean:true"),
            ("timeRange(1)", "boolean:true"),
            ("timeRange(23, 'GMT')", "boolean:true"),
            ("new Date().getHours()", "number:1"),
        ],
    )
    .await;
}

#[tokio::test]
async fn date_range_reproduces_the_netscape_algorithm() {
    check_at(
        "2009-03-03T12:00:00Z",
        "UTC",
        &[
            ("dateRange(3)", "boolean:true"),
            ("dateRange('MAR')", "boolean:true"),
            ("dateRange(2009)", "boolean:true"),
            ("dateRange(2, 'MAR')", "boolean:true"),
            ("dateRange(3, 'JAN')", "boolean:true"),
            ("dateRange(4, 'MAR', 2009)", "boolean:true"),
            ("dateRange(1, 2)", "boolean:false"),
            ("dateRange(1, 5)", "boolean:true"),
            ("dateRange('APR', 'JUN')", "boolean:false"),
            ("dateRange()", "boolean:false"),
        ],
    )
    .await;
    // Month ranges end on "day 31" of the end month, which overflows: JAN..APR includes May 1.
    check_at(
        "2024-05-01T10:00:00Z",
        "UTC",
        &[("dateRange('JAN', 'APR')", "boolean:true")],
    )
    .await;
    check_at(
        "2024-05-02T10:00:00Z",
        "UTC",
        &[("dateRange('JAN', 'APR')", "boolean:false")],
    )
    .await;
    // Ranges wrap around the year.
    check_at(
        "2024-01-15T10:00:00Z",
        "UTC",
        &[("dateRange('NOV', 'FEB')", "boolean:true")],
    )
    .await;
}

#[tokio::test]
async fn time_range_end_is_inclusive_and_only_long_forms_wrap() {
    check_at(
        "2024-05-07T13:00:00Z",
        "UTC",
        &[
            ("timeRange(13)", "boolean:true"),
            ("timeRange(12, 13)", "boolean:true"),
            ("timeRange(22, 2)", "boolean:false"),
            ("timeRange()", "boolean:false"),
        ],
    )
    .await;
    check_at(
        "2024-05-07T17:00:30Z",
        "UTC",
        &[
            ("timeRange(8, 30, 17, 0)", "boolean:true"),
            ("timeRange(17, 0, 0, 17, 0, 30)", "boolean:true"),
            ("timeRange(17, 0, 0, 17, 0, 29)", "boolean:false"),
        ],
    )
    .await;
    check_at(
        "2024-05-07T23:00:00Z",
        "UTC",
        &[
            ("timeRange(22, 0, 2, 0)", "boolean:true"),
            ("timeRange(22, 2)", "boolean:false"),
        ],
    )
    .await;
    let err = js("timeRange(1, 2, 3)").await;
    assert!(err.contains("timeRange: bad number of arguments"), "{err}");
}

#[tokio::test]
async fn modern_syntax_and_shadowing_work() {
    let script = r#"
        const rules = [['*.corp.example', 'PROXY corp:8080'], ['*.lab.example', 'SOCKS5 lab:1080']];
        function dnsDomainIs(h, d) { return 'shadowed'; }
        function FindProxyForURL(url, host) {
            for (const [pattern, proxy] of rules) {
                if (shExpMatch(host, pattern)) return proxy;
            }
            const pick = (h) => dnsDomainIs(h, '') === 'shadowed' ? 'DIRECT' : 'PROXY wrong:1';
            return pick(host);
        }"#;
    let e = PacEngine::new(script, options(), None).await.unwrap();
    assert_eq!(
        e.eval_raw("http://a.lab.example/", "a.lab.example")
            .await
            .unwrap()
            .raw,
        "SOCKS5 lab:1080"
    );
    assert_eq!(e.eval_raw("http://b/", "b").await.unwrap().raw, "DIRECT");
}

#[tokio::test]
async fn top_level_code_may_call_the_bindings() {
    let e = PacEngine::new(
        "var me = myIpAddress(); function FindProxyForURL(){ return 'PROXY ' + me + ':1'; }",
        options(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        e.eval_raw("http://a/", "a").await.unwrap().raw,
        "PROXY 192.0.2.10:1"
    );
}
