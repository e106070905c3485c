//! The gateway's ids for responses and their items: a prefix (`resp`, `msg`, `fc`) and 48 hex
//! digits of OS randomness, the shape OpenAI's ids have. Random rather than counted: ids are
//! shared by every replica through the store and are handed to clients.

/// A fresh id, `{prefix}_` + 48 hex digits.
pub fn new(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): fall back to the clock and a per-process
        // counter, unique if not unguessable; ownership checks still guard every read.
        let now = crate::clock::unix_micros().to_le_bytes();
        let n = COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes();
        bytes[..8].copy_from_slice(&now);
        bytes[8..16].copy_from_slice(&n);
        bytes[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    let mut id = String::with_capacity(prefix.len() + 1 + 48);
    id.push_str(prefix);
    id.push('_');
    crate::hex::push(&mut id, &bytes);
    id
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_and_48_hex_digits_and_do_not_repeat() {
        let a = new("resp");
        assert!(a.starts_with("resp_") && a.len() == 5 + 48, "{a}");
        assert!(a[5..].bytes().all(|b| b.is_ascii_hexdigit()));
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new("msg")).collect();
        assert_eq!(ids.len(), 1000);
    }
}
