//! Which URL each request asks for: one URL, a list, or a Zipf-popular population with an
//! optional share of guaranteed misses.

/// A small, fast PRNG (xorshift64*): the generator must not spend its core on randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone)]
pub enum UrlSet {
    /// Paths (with query) taken round-robin.
    List(Vec<String>),
    /// `template` with `{}` replaced by a rank drawn from Zipf(n, s); with `miss_ratio`, that
    /// share of requests gets a unique `miss=` query parameter so it cannot hit.
    Zipf {
        template: String,
        cumulative: Vec<f64>,
        miss_ratio: f64,
    },
    /// `template` with `{}` replaced by ranks 1..=n in order, then again: every object once
    /// per n requests (warming a population).
    Sequence { template: String, n: usize },
}

impl UrlSet {
    pub fn zipf(template: &str, n: usize, s: f64, miss_ratio: f64) -> UrlSet {
        let mut cumulative = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n.max(1) {
            total += 1.0 / (rank as f64).powf(s);
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        UrlSet::Zipf {
            template: template.to_string(),
            cumulative,
            miss_ratio: miss_ratio.clamp(0.0, 1.0),
        }
    }

    /// The path for request number `seq`.
    pub fn pick(&self, rng: &mut Rng, seq: u64) -> String {
        match self {
            UrlSet::Sequence { template, n } => {
                let rank = seq % (*n).max(1) as u64 + 1;
                template.replace("{}", &rank.to_string())
            }
            UrlSet::List(list) => list[(seq as usize) % list.len().max(1)].clone(),
            UrlSet::Zipf {
                template,
                cumulative,
                miss_ratio,
            } => {
                let u = rng.next_f64();
                let rank = cumulative.partition_point(|c| *c < u) + 1;
                let path = template.replace("{}", &rank.to_string());
                if *miss_ratio > 0.0 && rng.next_f64() < *miss_ratio {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    format!("{path}{sep}miss={}-{seq}", rng.next_u64())
                } else {
                    path
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks_and_misses_are_unique() {
        let set = UrlSet::zipf("/obj/{}", 1000, 1.0, 0.0);
        let mut rng = Rng::new(7);
        let mut first = 0;
        for i in 0..100_000 {
            if set.pick(&mut rng, i) == "/obj/1" {
                first += 1;
            }
        }
        // P(rank 1) = 1 / H(1000) ≈ 0.1336.
        assert!(
            (12_000..15_000).contains(&first),
            "rank 1 drawn {first} times"
        );

        let set = UrlSet::zipf("/obj/{}", 10, 1.0, 1.0);
        let a = set.pick(&mut rng, 1);
        let b = set.pick(&mut rng, 2);
        assert!(a.contains("?miss=") && a != b);
    }

    #[test]
    fn list_is_round_robin() {
        let set = UrlSet::List(vec!["/a".into(), "/b".into()]);
        let mut rng = Rng::new(1);
        let got: Vec<String> = (0..4).map(|i| set.pick(&mut rng, i)).collect();
        assert_eq!(got, ["/a", "/b", "/a", "/b"]);
    }
}
