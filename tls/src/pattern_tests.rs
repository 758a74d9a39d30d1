use super::*;

fn p(s: &str) -> HostPattern {
    s.parse().unwrap()
}

fn d(s: &str) -> DestPattern {
    s.parse().unwrap()
}

#[test]
fn exact_pattern_matches_only_that_host_in_any_case() {
    assert!(p("Example.com").matches("example.COM."));
    assert!(!p("example.com").matches("a.example.com"));
}

#[test]
fn star_pattern_matches_subdomains_but_not_the_apex() {
    assert!(p("*.example.com").matches("a.b.example.com"));
    assert!(p("*.example.com").matches("A.EXAMPLE.com"));
    assert!(!p("*.example.com").matches("example.com"));
    assert!(!p("*.example.com").matches("badexample.com"));
}

#[test]
fn dot_pattern_matches_apex_and_subdomains() {
    assert!(p(".example.com").matches("example.com"));
    assert!(p(".example.com").matches("x.example.com"));
    assert!(!p(".example.com").matches("xexample.com"));
}

#[test]
fn ip_and_cidr_patterns_match_ip_hosts_inside_them() {
    assert!(p("127.0.0.1").matches("127.0.0.1"));
    assert!(!p("127.0.0.1").matches("127.0.0.2"));
    assert!(p("10.0.0.0/8").matches("10.200.1.2"));
    assert!(!p("10.0.0.0/8").matches("11.0.0.1"));
    assert!(p("10.1.2.0/23").matches("10.1.3.255"));
    assert!(!p("10.1.2.0/23").matches("10.1.4.0"));
    assert!(p("::1").matches("[::1]"));
    assert!(p("fd00::/8").matches("fd12::1"));
    assert!(!p("10.0.0.0/8").matches("ten.example"));
}

#[test]
fn patterns_round_trip_through_display() {
    for s in [
        "a.b",
        "*.a.b",
        ".a.b",
        "127.0.0.1",
        "10.0.0.0/8",
        "::1",
        "fd00::/8",
    ] {
        assert_eq!(p(s).to_string(), s);
    }
    for s in [
        "a.b:8443",
        "*.a.b",
        "10.0.0.0/8:443",
        "[::1]:8443",
        "127.0.0.1:80",
    ] {
        assert_eq!(d(s).to_string(), s);
    }
}

#[test]
fn malformed_patterns_are_refused() {
    for s in ["", "*.", ".", "a..b", "a b", "*x.com", "a/b", "10.0.0.0/33"] {
        assert!(s.parse::<HostPattern>().is_err(), "{s}");
    }
    for s in ["a:b", "a:0", "[::1", "[::1]x", "a:70000"] {
        assert!(s.parse::<DestPattern>().is_err(), "{s}");
    }
}

#[test]
fn a_destination_pattern_with_a_port_matches_that_port_only() {
    assert!(d("api.corp:8443").matches("API.corp", 8443));
    assert!(!d("api.corp:8443").matches("api.corp", 443));
    assert!(d("api.corp").matches("api.corp", 443));
    assert!(d("[::1]:8443").matches("::1", 8443));
    assert!(d("::1").matches("[::1]", 1));
}

#[test]
fn within_tells_a_pattern_covered_by_another() {
    assert!(d("a.corp:443").within(&d("*.corp")));
    assert!(d("*.a.corp").within(&d(".corp")));
    assert!(d("10.1.0.0/16").within(&d("10.0.0.0/8")));
    assert!(!d("10.0.0.0/8").within(&d("10.1.0.0/16")));
    assert!(!d("a.corp").within(&d("*.corp:443")));
    assert!(!d(".corp").within(&d("*.corp")));
}
