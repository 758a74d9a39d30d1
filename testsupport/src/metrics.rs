//! Reading Prometheus metrics in tests: the text exposition of a registry (what `/metrics`
//! serves), and the value of one series in such a text.

/// The registry's metrics in the Prometheus text format.
pub fn text(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("the text encoding of gathered metrics does not fail")
}

/// The value of the series `name{labels}` exactly as printed (labels in the order Prometheus
/// prints them: sorted by name), or `None` when the text has no such series.
pub fn find(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// As [`find`], 0 when the series is absent (a counter never incremented is not printed).
pub fn metric(text: &str, series: &str) -> f64 {
    find(text, series).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP a_total A.\n# TYPE a_total counter\na_total{kind=\"x\"} 3\na_total{kind=\"xy\"} 5\nb 1.5\n";

    #[test]
    fn a_series_is_found_by_its_exact_name_and_labels() {
        assert_eq!(find(TEXT, "a_total{kind=\"x\"}"), Some(3.0));
        assert_eq!(find(TEXT, "a_total{kind=\"xy\"}"), Some(5.0));
        assert_eq!(find(TEXT, "b"), Some(1.5));
        assert_eq!(find(TEXT, "a_total"), None);
        assert_eq!(metric(TEXT, "c"), 0.0);
    }

    #[test]
    fn a_registry_is_rendered_as_prometheus_text() {
        let r = prometheus::Registry::new();
        let c = prometheus::IntCounter::new("t_total", "T.").unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c.inc_by(2);
        assert_eq!(metric(&text(&r), "t_total"), 2.0);
    }
}
