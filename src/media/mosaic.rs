//! Several pictures in one: a grid of tiles, each picture scaled to fit its tile (bars where
//! its shape differs) and labelled, as the receiver shows several senders in one window.

use super::window::{draw_card, draw_label};
use super::Picture;
use anyhow::Result;
use opencv::core::Mat;
use opencv::prelude::*;

/// Tiles are at most this large, the size of the cameras such a grid usually gathers...
const TILE_MAX: (u32, u32) = (640, 480);
/// ...and smaller when the whole grid would not fit a common screen.
const SCREEN: (u32, u32) = (1920, 1080);
/// The background between a picture and its tile's edges.
const BARS: u8 = 16;

pub struct Mosaic {
    columns: u32,
    tile: (u32, u32),
    /// The whole grid, BGR rows.
    canvas: Vec<u8>,
    scaled: Mat,
    /// One tile, composed before it goes into the canvas.
    composed: Vec<u8>,
}

impl Mosaic {
    /// A grid for `tiles` pictures, as near square as it goes (columns first).
    pub fn new(tiles: usize) -> Mosaic {
        let tiles = tiles.max(1) as u32;
        let columns = (1..=tiles).find(|c| c * c >= tiles).unwrap_or(tiles);
        let rows = tiles.div_ceil(columns);
        let scale = (f64::from(SCREEN.0) / f64::from(columns * TILE_MAX.0))
            .min(f64::from(SCREEN.1) / f64::from(rows * TILE_MAX.1))
            .min(1.0);
        // Even sizes: what video sizes are.
        let even = |length: u32| ((f64::from(length) * scale) as u32) & !1;
        let tile = (even(TILE_MAX.0).max(2), even(TILE_MAX.1).max(2));
        let canvas = vec![BARS; (columns * tile.0 * rows * tile.1 * 3) as usize];
        Mosaic {
            columns,
            tile,
            canvas,
            scaled: Mat::default(),
            composed: Vec::new(),
        }
    }

    /// The whole grid's width and height.
    pub fn size(&self) -> (u32, u32) {
        let rows = self.canvas.len() as u32 / (self.columns * self.tile.0 * self.tile.1 * 3);
        (self.columns * self.tile.0, rows * self.tile.1)
    }

    /// Puts `picture` in tile `index`, as large as fits, with `label` (unless empty) at its top
    /// left.
    pub fn put(&mut self, index: usize, picture: &Picture<'_>, label: &str) -> Result<()> {
        let (tile_w, tile_h) = self.tile;
        let scale = (f64::from(tile_w) / f64::from(picture.width.max(1)))
            .min(f64::from(tile_h) / f64::from(picture.height.max(1)));
        let fit = |length: u32, most: u32| ((f64::from(length) * scale) as u32).clamp(1, most);
        let (w, h) = (fit(picture.width, tile_w), fit(picture.height, tile_h));
        picture.scale_into((w, h), &mut self.scaled)?;
        let scaled = self.scaled.data_bytes()?;
        self.composed.clear();
        self.composed.resize((tile_w * tile_h * 3) as usize, BARS);
        let (left, top) = ((tile_w - w) / 2, (tile_h - h) / 2);
        let row = (w * 3) as usize;
        for (y, line) in scaled.chunks_exact(row).enumerate() {
            let at = (((top + y as u32) * tile_w + left) * 3) as usize;
            self.composed[at..at + row].copy_from_slice(line);
        }
        if !label.is_empty() {
            draw_label(self.tile, &mut self.composed, label, 0.045, true)?;
        }
        self.place(index);
        Ok(())
    }

    /// Puts a card of `lines` (the first large) in tile `index`, instead of a picture.
    pub fn put_card(&mut self, index: usize, lines: &[String]) -> Result<()> {
        draw_card(self.tile.0, self.tile.1, lines, &mut self.composed)?;
        self.place(index);
        Ok(())
    }

    /// The whole grid, to show.
    pub fn picture(&self) -> Picture<'_> {
        let (width, height) = self.size();
        Picture::new(width, height, &self.canvas)
    }

    /// Copies the composed tile into its place in the canvas (a tile past the grid is dropped).
    fn place(&mut self, index: usize) {
        let (tile_w, tile_h) = self.tile;
        let width = self.columns * tile_w;
        let (column, row) = (index as u32 % self.columns, index as u32 / self.columns);
        let line = (tile_w * 3) as usize;
        for (y, from) in self.composed.chunks_exact(line).enumerate() {
            let at = (((row * tile_h + y as u32) * width + column * tile_w) * 3) as usize;
            if let Some(to) = self.canvas.get_mut(at..at + line) {
                to.copy_from_slice(from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_tiles_make_a_two_by_two_grid_of_their_pictures() {
        let mut mosaic = Mosaic::new(4);
        assert_eq!(mosaic.size(), (1280, 960));
        let (w, h) = (64, 48);
        for (i, shade) in [40u8, 90, 140, 190].into_iter().enumerate() {
            let bgr = vec![shade; (w * h * 3) as usize];
            mosaic.put(i, &Picture::new(w, h, &bgr), "").unwrap();
        }
        let picture = mosaic.picture();
        let at = |x: u32, y: u32| picture.bgr[((y * 1280 + x) * 3) as usize];
        // The middle of each tile, left to right then top to bottom.
        assert_eq!(
            [at(320, 240), at(960, 240), at(320, 720), at(960, 720)],
            [40, 90, 140, 190]
        );
    }

    #[test]
    fn a_picture_of_another_shape_keeps_it_between_bars_and_nine_tiles_fit_the_screen() {
        let mut mosaic = Mosaic::new(9);
        let (width, height) = mosaic.size();
        assert!(width <= 1920 && height <= 1080, "{width}x{height}");
        let bgr = vec![200u8; 160 * 40 * 3];
        mosaic.put(4, &Picture::new(160, 40, &bgr), "").unwrap();
        let picture = mosaic.picture();
        let (tile_w, tile_h) = (width / 3, height / 3);
        let at = |x: u32, y: u32| picture.bgr[((y * width + x) * 3) as usize];
        assert_eq!(at(tile_w + tile_w / 2, tile_h + tile_h / 2), 200);
        assert_eq!(at(tile_w + tile_w / 2, tile_h + 2), BARS, "a bar above");
    }
}
