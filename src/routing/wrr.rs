//! Smooth weighted round-robin (nginx `ngx_http_upstream_get_peer`): every pick adds each
//! eligible peer's weight to its running score, takes the highest, and subtracts the eligible
//! total from the winner. Over every window of sum(weights) picks each peer is chosen exactly
//! weight times, and picks interleave evenly (5:1:1 gives a a b a c a a, not a a a a a b c).

#[derive(Debug, Clone)]
pub struct SmoothWrr {
    current: Vec<i64>,
}

// === impl SmoothWrr ===

impl SmoothWrr {
    pub fn new(peers: usize) -> Self {
        Self {
            current: vec![0; peers],
        }
    }

    /// Picks among the peers for which `eligible` holds; ineligible peers keep their score, as in
    /// nginx, so a peer that comes back resumes its share without a burst.
    pub fn pick(
        &mut self,
        weights: &[u32],
        mut eligible: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, &w) in weights.iter().enumerate() {
            if !eligible(i) {
                continue;
            }
            let w = i64::from(w);
            self.current[i] += w;
            total += w;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(weights: &[u32], n: usize) -> Vec<usize> {
        let mut wrr = SmoothWrr::new(weights.len());
        (0..n)
            .map(|_| wrr.pick(weights, |_| true).unwrap())
            .collect()
    }

    #[test]
    fn interleaves_like_nginx() {
        assert_eq!(sequence(&[5, 1, 1], 7), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(sequence(&[3, 1], 8), [0, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn exact_counts_in_every_aligned_window() {
        for weights in [
            &[3u32, 1][..],
            &[5, 1, 1],
            &[2, 3, 7, 1],
            &[1, 1, 1],
            &[10, 1],
        ] {
            let total: u32 = weights.iter().sum();
            let picks = sequence(weights, total as usize * 50);
            for window in picks.chunks(total as usize) {
                for (peer, &w) in weights.iter().enumerate() {
                    assert_eq!(
                        window.iter().filter(|&&p| p == peer).count(),
                        w as usize,
                        "{weights:?}: {window:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn skips_ineligible_peers_and_returns_none_when_all_are() {
        let mut wrr = SmoothWrr::new(3);
        let picks: Vec<_> = (0..6)
            .map(|_| wrr.pick(&[1, 1, 1], |i| i != 1).unwrap())
            .collect();
        assert!(!picks.contains(&1));
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 3);
        assert_eq!(wrr.pick(&[1, 1, 1], |_| false), None);
    }
}
