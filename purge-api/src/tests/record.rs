//! Records and the journal.

use std::collections::HashSet;

use crate::record::{Journal, PurgeRecord, Status};
use crate::request::{PurgeRequest, Targets};

fn record(id: String, tags: usize) -> PurgeRecord {
    PurgeRecord {
        id,
        status: Status::Done,
        purged: 3,
        took_us: 120,
        token: "ops".into(),
        at_unix_ms: 1_700_000_000_000,
        request: PurgeRequest {
            targets: Targets::Tags((0..tags).map(|i| format!("tag-{i}")).collect()),
            soft: false,
        },
        acks: Vec::new(),
        pending: Vec::new(),
    }
}

#[test]
fn record_json() {
    let r = record("n1-1-abcdef".into(), 1);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["id"], "n1-1-abcdef");
    assert_eq!(json["status"], "done");
    assert_eq!(json["purged"], 3);
    assert_eq!(json["took_us"], 120);
    assert_eq!(json["request"]["targets"]["tags"][0], "tag-0");
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        text.starts_with(r#"{"id":"n1-1-abcdef","status":"done","purged":3,"took_us":120,"#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<PurgeRecord>(&text).unwrap(), r);
    let failed = PurgeRecord {
        status: Status::Failed,
        ..r
    };
    assert_eq!(serde_json::to_value(&failed).unwrap()["status"], "failed");
}

#[test]
fn journal_is_bounded() {
    let journal = Journal::new(3);
    let ids: Vec<String> = (0..5).map(|_| journal.next_id("n1")).collect();
    for id in &ids {
        journal.insert(record(id.clone(), 1));
    }
    assert_eq!(journal.len(), 3);
    assert_eq!(journal.get(&ids[0]), None);
    assert_eq!(journal.get(&ids[1]), None);
    assert_eq!(journal.get(&ids[4]).map(|r| r.id), Some(ids[4].clone()));
    // Replacing keeps the place in line and the count.
    let updated = PurgeRecord {
        status: Status::Failed,
        ..record(ids[2].clone(), 1)
    };
    journal.insert(updated.clone());
    assert_eq!(journal.len(), 3);
    assert_eq!(journal.get(&ids[2]), Some(updated));
    journal.insert(record(journal.next_id("n1"), 1));
    assert_eq!(journal.get(&ids[2]), None);
    assert_eq!(journal.get("nope"), None);

    let none = Journal::new(0);
    none.insert(record(none.next_id("n1"), 1));
    assert!(none.is_empty());
}

#[test]
fn recent_lists_the_newest_first() {
    let journal = Journal::new(3);
    let ids: Vec<String> = (0..4).map(|_| journal.next_id("n1")).collect();
    for id in &ids {
        journal.insert(record(id.clone(), 1));
    }
    let recent: Vec<String> = journal.recent(2).into_iter().map(|r| r.id).collect();
    assert_eq!(recent, [ids[3].clone(), ids[2].clone()]);
    assert_eq!(journal.recent(10).len(), 3, "only what is kept");
}

#[test]
fn journal_bounds_bytes() {
    let journal = Journal::with_max_bytes(100, 10_000);
    let ids: Vec<String> = (0..10).map(|_| journal.next_id("n1")).collect();
    for id in &ids {
        journal.insert(record(id.clone(), 100)); // about 3 KiB each
    }
    assert!(
        journal.len() < 5 && !journal.is_empty(),
        "{}",
        journal.len()
    );
    assert!(journal.get(&ids[9]).is_some());
    assert_eq!(journal.get(&ids[0]), None);
    // One record over the budget on its own is still kept.
    journal.insert(record(journal.next_id("n1"), 1000));
    assert_eq!(journal.len(), 1);
}

#[test]
fn ids_are_unique_and_url_safe() {
    let journal = Journal::default();
    assert_eq!(journal.capacity(), 10_000);
    let mut seen = HashSet::new();
    let mut first = None;
    for i in 0..100_000 {
        let id = journal.next_id("pop-ams/1 é");
        assert!(id.starts_with("pop-ams_1__-"), "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
            "{id}"
        );
        journal.insert(record(id.clone(), 0));
        first.get_or_insert_with(|| id.clone());
        assert!(seen.insert(id), "duplicate at {i}");
    }
    assert_eq!(journal.len(), 10_000);
    assert_eq!(journal.get(&first.unwrap()), None);
    assert!(journal.next_id("").starts_with("node-"));
    let suffix = journal.next_id("n").rsplit('-').next().map(str::len);
    assert_eq!(suffix, Some(6));
}
