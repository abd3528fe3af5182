#![allow(clippy::unwrap_used)]

use expect_test::expect;

use super::*;
use crate::critical_path::critical_span_ids;
use crate::critical_path::tests::span;

/// A checkout request: auth, then a slow query racing a cache lookup, then a failed payment call.
fn checkout() -> Vec<SpanRecord> {
    let mut payment = span(6, Some(1), "payment.authorize", 600, 350);
    payment.status = SpanStatus::Error;
    vec![
        span(1, None, "GET /checkout", 0, 1_000),
        span(2, Some(1), "auth", 10, 40),
        span(3, Some(1), "load cart", 60, 520),
        span(4, Some(3), "SELECT * FROM cart_items WHERE cart_id = $1", 70, 500),
        span(5, Some(3), "cache.get", 75, 3),
        payment,
    ]
}

fn render(trace: &[SpanRecord], width: usize) -> String {
    render_gantt(trace, &critical_span_ids(trace), width, false)
}

#[test]
fn plain_chart_at_terminal_width() {
    let chart = render(&checkout(), 100);
    expect![[r#"
        trace 4bf92f3577b34da6a3ce929d0e0e4736 · 1.00s · 6 spans · 1 error
        GET /checkout                        ██████████████████████████████████████████████████████  1.00s
          auth                               ███                                                    40.0ms
          load cart                             █████████████████████████████                        520ms
            SELECT * FROM cart_items WHERE …    ████████████████████████████                         500ms
            cache.get                            ▒                                                  3.00ms
          payment.authorize                                                  ████████████████████    350ms ✗
                                             0                                                1.00s
    "#]]
    .assert_eq(&chart);
}

#[test]
fn narrow_widths_clamp_and_truncate_names() {
    let trace = checkout();
    expect![[r#"
        trace 4bf92f3577b34da6a3ce929d0e0e4736
        1.00s · 6 spans · 1 error
        GET /checko… ██████████████████  1.00s
          auth       █                  40.0ms
          load cart   ██████████         520ms
            SELECT …  ██████████         500ms
            cache.g…  ▒                 3.00ms
          payment.a…           ████████  350ms ✗
                     0            1.00s
    "#]]
    .assert_eq(&render(&trace, 10));
    for width in MIN_WIDTH..=160 {
        for line in render(&trace, width).lines() {
            assert!(line.chars().count() <= width, "{width}: {line:?}");
        }
    }
}

#[test]
fn colour_wraps_bars_and_marks_in_ansi() {
    let chart = render_gantt(&checkout(), &critical_span_ids(&checkout()), 60, true).replace('\x1b', "␛");
    expect![[r#"
        ␛[1mtrace 4bf92f3577b34da6a3ce929d0e0e4736␛[0m
        ␛[1m1.00s · 6 spans · 1 error␛[0m
        GET /checkout        ␛[1;31m██████████████████████████████␛[0m  1.00s
          auth               ␛[1;31m██␛[0m                             40.0ms
          load cart           ␛[1;31m█████████████████␛[0m              520ms
            SELECT * FROM c…   ␛[1;31m████████████████␛[0m              500ms
            cache.get          ␛[36m▒␛[0m                            3.00ms
          payment.authorize                    ␛[1;31m███████████␛[0m   350ms ␛[31m✗␛[0m
                             0                        1.00s
    "#]]
    .assert_eq(&chart);
}

#[test]
fn zero_durations_spans_before_the_root_and_orphans() {
    let trace = [
        span(1, None, "root", 100, 200),
        span(2, Some(1), "instant", 150, 0),
        span(3, Some(1), "starts before its parent", 0, 150),
        span(4, Some(42), "orphan", 250, 100),
    ];
    expect![[r#"
        trace 4bf92f3577b34da6a3ce929d0e0e4736 · 350ms · 4 spans
        root                           ███████████████████     200ms
          starts before its … ██████████████                   150ms
          instant                          ▒                     0ns
        orphan                                      ▒▒▒▒▒▒▒▒▒▒ 100ms
                              0                          350ms
    "#]]
    .assert_eq(&render(&trace, 60));

    let all_instant = [span(1, None, "root", 5, 0), span(2, Some(1), "child", 5, 0)];
    expect![[r#"
        trace 4bf92f3577b34da6a3ce929d0e0e4736
        0ns · 2 spans
        root    █                            0ns
          child ▒                            0ns
                0                        0ns
    "#]]
    .assert_eq(&render(&all_instant, 40));
}

#[test]
fn deep_trees_cap_the_indent() {
    let trace: Vec<SpanRecord> =
        (1..=12).map(|i| span(i, (i > 1).then(|| i - 1), "nested", i, 30 - 2 * i)).collect();
    expect![[r#"
        trace 4bf92f3577b34da6a3ce929d0e0e4736
        28.0ms · 12 spans
        nested           ██████████████████████████ 28.0ms
          nested         ██████████████████████████ 26.0ms
            nested        ████████████████████████  24.0ms
              nested       ██████████████████████   22.0ms
                nested      ████████████████████    20.0ms
                nested       ██████████████████     18.0ms
                nested        ████████████████      16.0ms
                nested         ██████████████       14.0ms
                nested          ████████████        12.0ms
                nested           ██████████         10.0ms
                nested            ████████          8.00ms
                nested             ██████           6.00ms
                         0                   28.0ms
    "#]]
    .assert_eq(&render(&trace, 50));
}

#[test]
fn control_characters_in_names_are_replaced() {
    let trace = [span(1, None, "evil\x1b[2J\nname", 0, 10)];
    expect![[r#"
        trace 4bf92f3577b34da6a3ce929d0e0e4736
        10.0ms · 1 span
        evil�[2J�na… ████████████████████ 10.0ms
                     0             10.0ms
    "#]]
    .assert_eq(&render(&trace, 40));
}

#[test]
fn empty_trace() {
    assert_eq!(render(&[], 80), "(no spans)\n");
}

#[test]
fn durations_use_three_significant_digits() {
    let cases = [
        0,
        999,
        1_000,
        8_500,
        9_996,
        99_960,
        850_000,
        999_499,
        999_500,
        12_345_678,
        1_200_000_000,
        250e9 as u64,
    ];
    let formatted: Vec<String> = cases.iter().map(|&n| format_duration(Duration::from_nanos(n))).collect();
    expect![[r#"
        [
            "0ns",
            "999ns",
            "1.00µs",
            "8.50µs",
            "10.0µs",
            "100µs",
            "850µs",
            "999µs",
            "1.00ms",
            "12.3ms",
            "1.20s",
            "250s",
        ]
    "#]]
    .assert_debug_eq(&formatted);
    assert_eq!(format_duration(Duration::MAX), "18446744073709551616s");
}
