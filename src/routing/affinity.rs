//! Session affinity by weighted rendezvous hashing: every (session, route) pair gets a score
//! `-weight / ln(u)`, `u` a uniform hash in (0, 1), and the session goes to the highest-scoring
//! route that can serve. One session always lands on the same route while it is healthy (the
//! provider's prompt cache stays warm); across many sessions each route gets its weight's share;
//! when a route leaves only its own sessions move, and they come back when it returns.
//!
//! The hash is FNV-1a with a SplitMix64 finaliser: fixed and specified, so every replica and
//! every build agrees on the placement (std's `DefaultHasher` promises neither).

/// The session's half of the hash, computed once per turn.
pub fn session_key(session_id: &str) -> u64 {
    fnv1a(0xcbf2_9ce4_8422_2325, session_id.as_bytes())
}

/// The session's score for a route of `weight`, identified by a stable `label`
/// (provider/upstream model: the same across reloads and replicas).
pub fn score(session_key: u64, label: &str, weight: u32) -> f64 {
    let h = mix(fnv1a(session_key, label.as_bytes()));
    // 53 random bits → u in (0, 1), never 0 or 1, so ln(u) < 0.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The index of the best-scoring candidate, `(label, weight)` each.
pub fn choose<'a>(
    session_key: u64,
    candidates: impl Iterator<Item = (&'a str, u32)>,
) -> Option<usize> {
    candidates
        .enumerate()
        .map(|(i, (label, weight))| (i, score(session_key, label, weight)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: [(&str, u32); 3] = [("a/m", 3), ("b/m", 1), ("c/m", 1)];

    #[test]
    fn a_session_always_gets_the_same_route() {
        let key = session_key("user-42:chat-7");
        let first = choose(key, ROUTES.iter().copied());
        for _ in 0..10 {
            assert_eq!(choose(key, ROUTES.iter().copied()), first);
        }
    }

    #[test]
    fn weights_hold_across_many_sessions() {
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            let key = session_key(&format!("session-{i}"));
            counts[choose(key, ROUTES.iter().copied()).unwrap()] += 1;
        }
        // 3:1:1 → 6,000 / 2,000 / 2,000, within 5%.
        for (count, want) in counts.iter().zip([6_000, 2_000, 2_000]) {
            assert!(count.abs_diff(want) < want / 20, "{counts:?}");
        }
    }

    fn winner<'a>(key: u64, routes: &[(&'a str, u32)]) -> &'a str {
        routes[choose(key, routes.iter().copied()).unwrap()].0
    }

    #[test]
    fn when_a_route_leaves_only_its_sessions_move() {
        let without_b = [ROUTES[0], ROUTES[2]];
        for i in 0..2_000 {
            let key = session_key(&format!("session-{i}"));
            let before = winner(key, &ROUTES);
            if before != "b/m" {
                assert_eq!(
                    winner(key, &without_b),
                    before,
                    "session-{i} moved needlessly"
                );
            }
        }
    }
}
