//! `LOLWUT [VERSION v] [args...]`: Redis's computer art command, ported
//! from `lolwut.c`, `lolwut5.c` and `lolwut6.c`. Without `VERSION` it is
//! 7.0's, which prints the version; `VERSION 5` draws Georg Nees's
//! "Schotter" in Braille dots, `VERSION 6` a city skyline in terminal grays.
//! The art is random, as in Redis.

use bytes::Bytes;
use rand::Rng;

use super::connection::REDIS_VERSION;
use crate::command::ctx::int_arg;
use crate::command::{CmdResult, Ctx, Handler};

pub const HANDLERS: &[(&str, Handler)] = &[("lolwut", lolwut)];

/// The most pixels a `VERSION 5` canvas gets.
const MAX_PIXELS: i64 = 16 << 20;

fn lolwut(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut args = &args[1..];
    let mut version = None;
    if args.len() >= 2 && args[0].eq_ignore_ascii_case(b"version") {
        // `%u` of the long, as Redis formats it.
        version = Some(int_arg(&args[1])? as u32);
        args = &args[2..];
    }
    let text = match version {
        Some(5) => schotter(args)?,
        Some(6) => skyline(args)?,
        _ => format!("Redis ver. {REDIS_VERSION}\n"),
    };
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// The optional integer arguments, with Redis's defaults and limits.
fn numbers<const N: usize>(
    args: &[Bytes],
    defaults: [i64; N],
    max: [i64; N],
) -> Result<[i64; N], crate::command::CmdError> {
    let mut v = defaults;
    for (i, a) in args.iter().take(N).enumerate() {
        v[i] = int_arg(a)?;
    }
    for (x, m) in v.iter_mut().zip(max) {
        *x = (*x).clamp(1, m);
    }
    Ok(v)
}

/// A canvas of pixels with a few colors (Redis's `lwCanvas`).
struct Canvas {
    width: i64,
    height: i64,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i64, height: i64, color: u8) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![color; (width * height) as usize],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: u8) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize] = color;
        }
    }

    fn get(&self, x: i64, y: i64) -> u8 {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize]
        } else {
            0
        }
    }

    /// Bresenham's line.
    fn line(&mut self, mut x1: i64, mut y1: i64, x2: i64, y2: i64, color: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square centered at `x,y`, rotated by `angle` (`lwDrawSquare`).
    fn square(&mut self, x: i64, y: i64, size: f32, angle: f32, color: u8) {
        let size = (size / std::f32::consts::SQRT_2).round();
        let mut k = std::f32::consts::FRAC_PI_4 + angle;
        let mut p = [(0i64, 0i64); 4];
        for pt in &mut p {
            *pt = (
                (k.sin() * size + x as f32).round() as i64,
                (k.cos() * size + y as f32).round() as i64,
            );
            k += std::f32::consts::FRAC_PI_2;
        }
        for j in 0..4 {
            let (a, b) = (p[j], p[(j + 1) % 4]);
            self.line(a.0, a.1, b.0, b.1, color);
        }
    }
}

/// `LOLWUT VERSION 5 [columns] [squares per row] [squares per column]`.
fn schotter(args: &[Bytes]) -> Result<String, crate::command::CmdError> {
    let [cols, per_row, mut per_col] = numbers(args, [66, 8, 12], [1000, 200, 200])?;
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    // Redis's limits allow a canvas of 800 million pixels (1000 columns,
    // 1 square per row, 200 rows of squares); past 16 million, fewer rows
    // of squares are drawn, so one call cannot exhaust memory.
    while per_col > 1 && (side * per_col as f32) as i64 * width > MAX_PIXELS {
        per_col -= 1;
    }
    let height = (side * per_col as f32) as i64 + padding * 2;
    let mut canvas = Canvas::new(width, height, 0);
    let mut rng = rand::thread_rng();
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0) as i64 + padding;
            let mut sy = (y as f32 * side + side / 2.0) as i64 + padding;
            let mut angle = 0.0;
            if y > 1 {
                let mut r = || {
                    let v = rng.gen::<f32>() / per_col as f32 * y as f32;
                    if rng.gen::<bool>() {
                        -v
                    } else {
                        v
                    }
                };
                let (r1, r2, r3) = (r(), r(), r());
                angle = r1;
                sx += (r2 * side / 3.0) as i64;
                sy += (r3 * side / 3.0) as i64;
            }
            canvas.square(sx, sy, side, angle, 1);
        }
    }
    // Each Braille character shows 2x4 pixels.
    let mut text = String::new();
    for y in (0..canvas.height).step_by(4) {
        for x in (0..canvas.width).step_by(2) {
            let bits = [
                (x, y),
                (x, y + 1),
                (x, y + 2),
                (x + 1, y),
                (x + 1, y + 1),
                (x + 1, y + 2),
                (x, y + 3),
                (x + 1, y + 3),
            ];
            let byte = bits
                .iter()
                .enumerate()
                .filter(|(_, &(px, py))| canvas.get(px, py) != 0)
                .fold(0u32, |b, (i, _)| b | 1 << i);
            text.push(char::from_u32(0x2800 + byte).unwrap_or(' '));
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
    text.push_str(REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

/// `LOLWUT VERSION 6 [columns] [rows]`.
fn skyline(args: &[Bytes]) -> Result<String, crate::command::CmdError> {
    let [cols, rows] = numbers(args, [80, 20], [1000, 1000])?;
    let mut canvas = Canvas::new(cols, rows, 3);
    let mut rng = rand::thread_rng();
    let h = canvas.height;
    // Background buildings without windows, lighter ones behind.
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < canvas.width {
            offset += rng.gen_range(0..8);
            let width = 10 + rng.gen_range(0..9);
            let height = if color == 2 {
                h / 2 + rng.gen_range(0..h) / 2
            } else {
                h / 2 + rng.gen_range(0..h) / 3
            };
            building(&mut canvas, &mut rng, offset, width, height, false, color);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    // The foreground, with windows.
    let mut offset = -10;
    while offset < canvas.width {
        offset += rng.gen_range(0..8);
        let mut width = 5 + rng.gen_range(0..14);
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + rng.gen_range(0..h) / 2;
        building(&mut canvas, &mut rng, offset, width, height, true, 0);
        offset += width + 5;
    }
    let mut text = String::new();
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            let escape = match canvas.get(x, y) {
                1 => "0;90;100m",
                2 => "0;37;47m",
                3 => "0;97;107m",
                _ => "0;30;40m",
            };
            text.push_str("\x1b[");
            text.push_str(escape);
            text.push_str(" \x1b[0m");
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text.push_str(
        "\nDedicated to the 8 bit game developers of past and present.\n\
         Original 8 bit image from Plaguemon by hikikomori. Redis ver. ",
    );
    text.push_str(REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

/// One building (`generateSkyscraper`): windows two pixels wide in a
/// random gray other than the wall's.
fn building(
    canvas: &mut Canvas,
    rng: &mut impl Rng,
    xoff: i64,
    width: i64,
    height: i64,
    windows: bool,
    color: u8,
) {
    let start_y = canvas.height - 1;
    let end_y = start_y - height + 1;
    let mut y = start_y;
    while y >= end_y {
        for x in xoff..xoff + width {
            // The roof is four pixels narrower.
            if y == end_y && (x <= xoff + 1 || x >= xoff + width - 2) {
                continue;
            }
            let mut c = color;
            if windows && x > xoff + 1 && x < xoff + width - 2 && y > end_y + 1 && y < start_y - 1 {
                let (relx, rely) = (x - (xoff + 1), y - (end_y + 1));
                if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                    c = loop {
                        let g = 1 + rng.gen_range(0..2u8);
                        if g != color {
                            break g;
                        }
                    };
                    if relx % 2 != 0 {
                        c = canvas.get(x - 1, y);
                    }
                }
            }
            canvas.set(x, y, c);
        }
        y -= 1;
    }
}
