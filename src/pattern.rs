//! The built-in moving test pattern: a stand-in camera that needs no hardware.
//!
//! Each frame is a pure function of its sequence number, so a test can rebuild the frame a
//! receiver got and compare bytes. It is made of rows copied from precomputed colour bands at a
//! shifting offset plus a moving white square: one copy per row, cheap enough at 1080p that it is
//! never what limits the frame rate.

/// Bands of distinct colour stacked vertically.
const BANDS: usize = 8;
/// Pixels the pattern moves left per frame.
const STEP: usize = 4;

pub struct TestPattern {
    width: usize,
    height: usize,
    /// Each band's colours for two widths, so any `width` pixels from an offset below `width`
    /// are one contiguous copy.
    bands: Vec<Vec<u8>>,
}

impl TestPattern {
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width as usize, height as usize);
        let bands = (0..BANDS)
            .map(|band| {
                (0..2 * width)
                    .flat_map(|x| colour(band, (x % width) as f64 / width as f64))
                    .collect()
            })
            .collect();
        TestPattern {
            width,
            height,
            bands,
        }
    }

    pub fn width(&self) -> u32 {
        self.width as u32
    }

    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// Writes frame `seq` into `out` as BGR rows, reusing its allocation.
    pub fn render(&self, seq: u64, out: &mut Vec<u8>) {
        let row_bytes = self.width * 3;
        let offset = (seq as usize).wrapping_mul(STEP) % self.width * 3;
        // Appending rows to a cleared buffer writes each byte once; resizing first would zero
        // the whole frame before overwriting it.
        out.clear();
        out.reserve(row_bytes * self.height);
        for y in 0..self.height {
            let band = &self.bands[y * BANDS / self.height];
            out.extend_from_slice(&band[offset..offset + row_bytes]);
        }
        self.draw_square(seq, out);
    }

    /// A white square bouncing along a diagonal, so motion is visible even in a still band.
    fn draw_square(&self, seq: u64, out: &mut [u8]) {
        let side = (self.height.min(self.width) / 6).max(1);
        let travel_x = self.width - side;
        let travel_y = self.height - side;
        let x = bounce(seq as usize * STEP, travel_x);
        let y = bounce(seq as usize * STEP / 2, travel_y);
        for row in out.chunks_exact_mut(self.width * 3).skip(y).take(side) {
            row[x * 3..(x + side) * 3].fill(255);
        }
    }
}

/// Position `t` folded into `0..=travel` back and forth.
fn bounce(t: usize, travel: usize) -> usize {
    if travel == 0 {
        return 0;
    }
    let phase = t % (2 * travel);
    if phase <= travel {
        phase
    } else {
        2 * travel - phase
    }
}

/// A smooth periodic colour, so the pattern wraps seamlessly and compresses like a real scene.
fn colour(band: usize, t: f64) -> [u8; 3] {
    let wave = |cycles: f64, phase: f64| {
        let v = (std::f64::consts::TAU * (cycles * t + phase)).sin();
        (127.5 + 127.5 * v) as u8
    };
    let k = band as f64 / BANDS as f64;
    [wave(1.0, k), wave(2.0, 0.5 * k + 0.25), wave(3.0, 0.75 - k)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_reproducible_and_move() {
        let pattern = TestPattern::new(64, 48);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        pattern.render(10, &mut a);
        pattern.render(10, &mut b);
        pattern.render(11, &mut c);
        assert_eq!(a.len(), 64 * 48 * 3);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn tiny_and_odd_sizes_render() {
        for (w, h) in [(1, 1), (2, 1), (1, 7), (33, 17)] {
            let mut out = Vec::new();
            TestPattern::new(w, h).render(123_456, &mut out);
            assert_eq!(out.len(), (w * h * 3) as usize);
        }
    }

    #[test]
    fn bounce_stays_in_range() {
        for t in 0..100 {
            assert!(bounce(t, 7) <= 7);
        }
        assert_eq!(bounce(9, 7), 5);
    }
}
