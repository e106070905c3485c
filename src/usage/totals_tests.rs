//! Usage totals from the file sink: grouping, windows and exact sums.

use super::*;

fn line(key: &str, model: &str, at_us: i64, input: i64, cost: &str) -> String {
    serde_json::json!({
        "request_id": format!("r{at_us}"), "created_at_us": at_us, "key_name": key, "session_id": null,
        "model_name": model, "provider_id": "p", "upstream_model": "u", "stream": false,
        "input_tokens": input, "output_tokens": 1, "usage_source": "upstream", "cost": cost,
        "latency_ms": 1, "ttft_ms": null, "attempts": 1, "status": "ok", "http_status": 200,
        "error_message": null, "purpose": "chat"
    })
    .to_string()
}

#[test]
fn the_file_sink_totals_by_group_within_the_window() {
    let day = 86_400_000_000;
    let path = std::env::temp_dir().join(format!("switchyard-totals-{}.jsonl", std::process::id()));
    let text = [
        line("a", "m1", day, 10, "0.0000000001"),
        line("a", "m2", day + 5, 20, "0.0000000002"),
        line("b", "m1", 2 * day, 30, "1.5"),
        line("a", "m1", 3 * day, 40, "9"), // outside the window
        "{\"torn".to_owned(),
    ]
    .join("\n");
    std::fs::write(&path, text).unwrap();
    let query = |group, key: Option<&str>| Query {
        group,
        from_us: day,
        to_us: 3 * day,
        key: key.map(str::to_owned),
    };
    let by_day = from_files(std::slice::from_ref(&path), &query(Group::Day, None)).unwrap();
    let summary: Vec<_> = by_day
        .iter()
        .map(|t| {
            (
                t.group.as_str(),
                t.requests,
                t.input_tokens,
                format_cost(t.cost),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("1970-01-02", 2, 30, "0.0000000003".to_owned()),
            ("1970-01-03", 1, 30, "1.5000000000".to_owned())
        ]
    );
    let key_a = from_files(std::slice::from_ref(&path), &query(Group::Model, Some("a"))).unwrap();
    let models: Vec<_> = key_a
        .iter()
        .map(|t| (t.group.as_str(), t.requests))
        .collect();
    assert_eq!(models, [("m1", 1), ("m2", 1)]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        from_files(std::slice::from_ref(&path), &query(Group::All, None)).unwrap(),
        []
    );
}

#[test]
fn windows_are_read_from_whole_hours_and_only_their_unaligned_edges_from_rows() {
    let h = HOUR_US;
    let day = 24 * h;
    let now = 10 * day + 5 * h + 17;
    // The defaults: a month start until now. No row is read.
    assert_eq!(
        Split::of(0, now, now),
        Split {
            hours: (0, 10 * day + 6 * h),
            before: (0, 0),
            after: (10 * day + 6 * h, 10 * day + 6 * h),
        }
    );
    // A past window on dates: whole hours only.
    assert_eq!(
        Split::of(day, 3 * day, now),
        Split {
            hours: (day, 3 * day),
            before: (day, day),
            after: (3 * day, 3 * day),
        }
    );
    // Unaligned past edges: under an hour of rows at each end.
    assert_eq!(
        Split::of(day + 7, 3 * day + 2 * h + 9, now),
        Split {
            hours: (day + h, 3 * day + 2 * h),
            before: (day + 7, day + h),
            after: (3 * day + 2 * h, 3 * day + 2 * h + 9),
        }
    );
    // Inside one past hour: rows only, exactly the window.
    assert_eq!(
        Split::of(day + 7, day + 99, now),
        Split {
            hours: (0, 0),
            before: (day + 7, day + 99),
            after: (0, 0),
        }
    );
    // An empty or reversed window reads nothing.
    for (from, to) in [(day, day), (2 * day, day), (now + h, now)] {
        let split = Split::of(from, to, now);
        assert_eq!(split.hours.0, split.hours.1, "{from} {to}");
        assert_eq!(split.before.0, split.before.1, "{from} {to}");
        assert_eq!(split.after.0, split.after.1, "{from} {to}");
    }
    assert_eq!(ceil_hour(-1), 0);
    assert_eq!(ceil_hour(h), h);
    assert_eq!(ceil_hour(h + 1), 2 * h);
}
