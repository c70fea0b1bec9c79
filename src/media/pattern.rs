//! The built-in moving test pattern: a stand-in camera that needs no hardware.
//!
//! Each frame is a pure function of its sequence number, so a test can rebuild the frame a
//! receiver got and compare bytes: smooth colour bands (they compress like a real scene), a white
//! square bouncing along a diagonal, and in the top-left corner a stamp of a few pixels that
//! encodes the sequence number.
//!
//! The stamp is also what keeps the pattern from limiting the frame rate: a buffer that already
//! holds a frame of this pattern (the sender recycles its buffers) is brought up to date by
//! repainting only the old and new squares and the stamp, instead of writing every byte again.

/// Bands of distinct colour stacked vertically.
const BANDS: usize = 8;
/// Pixels the square moves per frame.
const STEP: usize = 4;
/// Stamp layout in the first bytes of row 0: the sequence number, the same xor-ed with a key
/// (so pixels that merely happen to look like a stamp are not taken for one), and a marker.
const STAMP_KEY: u64 = 0x6361_6d73_7472_6d21;
const STAMP_MARK: &[u8; 8] = b"CAMSTRM!";
const STAMP_BYTES: usize = 24;

pub struct TestPattern {
    width: usize,
    height: usize,
    /// One row of each band's colours.
    bands: Vec<Vec<u8>>,
}

/// Where the square is in one frame: first column, first row, side.
#[derive(Clone, Copy)]
struct Square {
    x: usize,
    y: usize,
    side: usize,
}

impl TestPattern {
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width as usize, height as usize);
        let bands = (0..BANDS)
            .map(|band| {
                (0..width)
                    .flat_map(|x| colour(band, x as f64 / width as f64))
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

    fn row_bytes(&self) -> usize {
        self.width * 3
    }

    fn background_row(&self, y: usize) -> &[u8] {
        &self.bands[y * BANDS / self.height]
    }

    /// Writes frame `seq` into `out` as BGR rows, reusing its allocation and, when `out` already
    /// holds a frame of this pattern, most of its contents.
    pub fn render(&self, seq: u64, out: &mut Vec<u8>) {
        match self.stamped_seq(out) {
            Some(previous) => {
                self.paint(self.square(previous), out, true);
                out[..STAMP_BYTES].copy_from_slice(&self.background_row(0)[..STAMP_BYTES]);
            }
            None => {
                out.clear();
                out.reserve(self.row_bytes() * self.height);
                for y in 0..self.height {
                    out.extend_from_slice(self.background_row(y));
                }
            }
        }
        self.paint(self.square(seq), out, false);
        if let Some(stamp) = out
            .get_mut(..STAMP_BYTES)
            .filter(|_| self.row_bytes() >= STAMP_BYTES)
        {
            stamp[..8].copy_from_slice(&seq.to_le_bytes());
            stamp[8..16].copy_from_slice(&(seq ^ STAMP_KEY).to_le_bytes());
            stamp[16..].copy_from_slice(STAMP_MARK);
        }
    }

    /// The sequence number of the frame of this pattern that `frame` holds, if it holds one.
    fn stamped_seq(&self, frame: &[u8]) -> Option<u64> {
        if frame.len() != self.row_bytes() * self.height || self.row_bytes() < STAMP_BYTES {
            return None;
        }
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&frame[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        let seq = word(0);
        (word(8) == seq ^ STAMP_KEY && &frame[16..STAMP_BYTES] == STAMP_MARK).then_some(seq)
    }

    /// The square of frame `seq`, bouncing along a diagonal so motion is visible.
    fn square(&self, seq: u64) -> Square {
        let side = (self.height.min(self.width) / 6).max(1);
        Square {
            x: bounce(seq as usize * STEP, self.width - side),
            y: bounce(seq as usize * STEP / 2, self.height - side),
            side,
        }
    }

    /// Paints `square` white, or with the background where `background` is true.
    fn paint(&self, square: Square, frame: &mut [u8], background: bool) {
        let columns = square.x * 3..(square.x + square.side) * 3;
        for y in square.y..square.y + square.side {
            let start = y * self.row_bytes();
            let row = &mut frame[start + columns.start..start + columns.end];
            match background {
                true => row.copy_from_slice(&self.background_row(y)[columns.clone()]),
                false => row.fill(255),
            }
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
    fn repainting_a_recycled_frame_gives_the_same_bytes_as_painting_afresh() {
        let pattern = TestPattern::new(320, 240);
        let mut recycled = Vec::new();
        for seq in [0, 1, 2, 50, 49, 1000, 7, 7] {
            pattern.render(seq, &mut recycled);
            let mut fresh = Vec::new();
            pattern.render(seq, &mut fresh);
            assert_eq!(recycled, fresh, "frame {seq}");
            assert_eq!(pattern.stamped_seq(&fresh), Some(seq));
        }
        // Pixels that are not a stamp of this size are painted afresh.
        let mut other = vec![7u8; 320 * 240 * 3];
        pattern.render(3, &mut other);
        let mut fresh = Vec::new();
        pattern.render(3, &mut fresh);
        assert_eq!(other, fresh);
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
