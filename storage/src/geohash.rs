//! Geohashes as Redis's GEO commands use them (`geohash.c`,
//! `geohash_helper.c`): a position is a 52-bit interleaved geohash (26
//! steps of longitude and latitude, latitude limited to ±85.05112878, the
//! Web Mercator range) kept as a sorted-set score, so a search is a few
//! score ranges (the cell holding the centre and its eight neighbours, at a
//! step chosen from the radius) filtered by exact distance.
//!
//! Every formula, constant and rounding step is Redis's, so that scores,
//! distances and search results are the same numbers Redis gives.

/// Steps of a stored geohash (26 × 2 = 52 bits: exact in a double).
pub const STEP_MAX: u8 = 26;
/// Latitude limits of the stored encoding (EPSG:900913).
pub const LAT_MIN: f64 = -85.05112878;
/// See [`LAT_MIN`].
pub const LAT_MAX: f64 = 85.05112878;
/// Longitude limits.
pub const LONG_MIN: f64 = -180.0;
/// See [`LONG_MIN`].
pub const LONG_MAX: f64 = 180.0;
/// Redis's Earth radius for the haversine distance, in metres.
pub const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(a: f64) -> f64 {
    a * D_R
}

fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// A geohash of `step` steps (2 × `step` bits); all zero means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bits {
    /// The interleaved bits, latitude in the even positions.
    pub bits: u64,
    /// Steps of precision.
    pub step: u8,
}

impl Bits {
    /// The "no cell" value (a neighbour left out of a search).
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The bits shifted to 52-bit precision: the lowest score inside the
    /// cell (`geohashAlign52Bits`).
    pub fn align52(&self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }

    /// The score range `[min, max)` of the members inside the cell
    /// (`scoresOfGeoHashBox`).
    pub fn score_range(&self) -> (u64, u64) {
        let next = Bits {
            bits: self.bits + 1,
            step: self.step,
        };
        (self.align52(), next.align52())
    }
}

/// A coordinate range.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
}

/// The longitude and latitude ranges a geohash cell covers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Area {
    /// Longitudes.
    pub longitude: Range,
    /// Latitudes.
    pub latitude: Range,
}

/// The stored encoding's ranges (`geohashGetCoordRange`).
const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = u64::from(xlo);
    let mut y = u64::from(ylo);
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// `geohashEncode` over the given ranges; `None` outside the stored
/// encoding's limits or the ranges.
pub fn encode_in(
    long_range: Range,
    lat_range: Range,
    lon: f64,
    lat: f64,
    step: u8,
) -> Option<Bits> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_range.min || lat > lat_range.max || lon < long_range.min || lon > long_range.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (lon - long_range.min) / (long_range.max - long_range.min) * scale;
    // C's conversion to uint32_t truncates (the offsets are in range).
    Some(Bits {
        bits: interleave64(lat_offset as u32, long_offset as u32),
        step,
    })
}

/// `geohashEncodeWGS84`: a position in the stored encoding.
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Bits> {
    encode_in(LONG_RANGE, LAT_RANGE, lon, lat, step)
}

/// The cell of a geohash (`geohashDecode`); `None` for the zero hash.
pub fn decode_in(long_range: Range, lat_range: Range, hash: Bits) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let ilato = sep as u32;
    let ilono = (sep >> 32) as u32;
    let div = (1u64 << hash.step) as f64;
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    Some(Area {
        latitude: Range {
            min: lat_range.min + (f64::from(ilato) * 1.0 / div) * lat_scale,
            max: lat_range.min + ((f64::from(ilato) + 1.0) * 1.0 / div) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (f64::from(ilono) * 1.0 / div) * long_scale,
            max: long_range.min + ((f64::from(ilono) + 1.0) * 1.0 / div) * long_scale,
        },
    })
}

/// `geohashDecodeWGS84`.
pub fn decode(hash: Bits) -> Option<Area> {
    decode_in(LONG_RANGE, LAT_RANGE, hash)
}

/// The position a stored score stands for: its cell's centre, clamped to
/// the limits (`decodeGeohash`).
pub fn decode_score(score: f64) -> Option<(f64, f64)> {
    let area = decode(Bits {
        bits: score as u64,
        step: STEP_MAX,
    })?;
    let lon = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// The score a position is stored under (`GEOADD`); `None` outside the
/// limits.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(lon, lat, STEP_MAX).map(|b| b.align52())
}

/// The standard 11-character geohash string (`GEOHASH`): the position
/// re-encoded over latitudes ±90, the last character always `0`.
pub fn geohash_string(score: f64) -> Option<[u8; 11]> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score)?;
    let hash = encode_in(
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
        lon,
        lat,
        26,
    )
    .unwrap_or_default();
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        let idx = (hash.bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[idx as usize];
    }
    Some(out)
}

/// Moves a cell one step along the axis whose bits `mine` selects
/// (longitude: the odd bits, latitude: the even ones), `d` = -1, 0 or 1,
/// wrapping around (Redis's `geohash_move_x` / `geohash_move_y`).
fn move_axis(hash: &mut Bits, d: i8, mine: u64) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let mut v = hash.bits & mine;
    let other = hash.bits & !mine;
    let zz = !mine >> shift;
    if d > 0 {
        v = v.wrapping_add(zz + 1);
    } else {
        v |= zz;
        v = v.wrapping_sub(zz + 1);
    }
    v &= mine >> shift;
    hash.bits = v | other;
}

const LONG_BITS: u64 = 0xaaaaaaaaaaaaaaaa;
const LAT_BITS: u64 = 0x5555555555555555;

/// The cell and its eight neighbours, in the order a search visits them
/// (centre, N, S, E, W, NE, NW, SE, SW); a neighbour left out is zero.
pub type Cells = [Bits; 9];

fn neighbours(hash: Bits) -> Cells {
    let at = |dx: i8, dy: i8| {
        let mut h = hash;
        move_axis(&mut h, dx, LONG_BITS);
        move_axis(&mut h, dy, LAT_BITS);
        h
    };
    [
        hash,
        at(0, 1),
        at(0, -1),
        at(1, 0),
        at(-1, 0),
        at(1, 1),
        at(-1, 1),
        at(1, -1),
        at(-1, -1),
    ]
}

/// What a search covers (`GeoShape`): a centre, in degrees, and a radius
/// or a box, in the unit given (`conversion` metres each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Longitude and latitude of the centre.
    pub xy: (f64, f64),
    /// Metres per unit.
    pub conversion: f64,
    /// The radius, or the box's width and height.
    pub kind: ShapeKind,
}

/// The two search shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShapeKind {
    /// `BYRADIUS` (and `GEORADIUS`).
    Radius(f64),
    /// `BYBOX width height`.
    Box(f64, f64),
}

/// `geohashEstimateStepsByRadius`.
pub fn estimate_steps(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

impl Shape {
    /// `geohashBoundingBox`: min lon, min lat, max lon, max lat.
    pub fn bounds(&self) -> [f64; 4] {
        let (lon, lat) = self.xy;
        let (h, w) = match self.kind {
            ShapeKind::Radius(r) => (r, r),
            ShapeKind::Box(w, h) => (h / 2.0, w / 2.0),
        };
        let height = self.conversion * h;
        let width = self.conversion * w;
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
        let southern = lat < 0.0;
        let delta = if southern {
            long_delta_bottom
        } else {
            long_delta_top
        };
        [lon - delta, lat - lat_delta, lon + delta, lat + lat_delta]
    }

    /// The cells to scan (`geohashCalculateAreasByShapeWGS84`): the
    /// centre's cell at a step fit for the radius, and the neighbours the
    /// bounding box reaches.
    pub fn cells(&self) -> Cells {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let (lon, lat) = self.xy;
        let radius_meters = match self.kind {
            ShapeKind::Radius(r) => r,
            ShapeKind::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, lat);
        let mut hash = encode(lon, lat, steps).unwrap_or_default();
        let mut cells = neighbours(hash);
        let area_of = |h: Bits| decode(h).unwrap_or_default();
        let decrease = area_of(cells[1]).latitude.max < max_lat
            || area_of(cells[2]).latitude.min > min_lat
            || area_of(cells[3]).longitude.max < max_lon
            || area_of(cells[4]).longitude.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            hash = encode(lon, lat, steps).unwrap_or_default();
            cells = neighbours(hash);
        }
        let area = area_of(hash);
        if steps >= 2 {
            let zero = Bits::default();
            if area.latitude.min < min_lat {
                cells[2] = zero; // south
                cells[8] = zero; // south west
                cells[7] = zero; // south east
            }
            if area.latitude.max > max_lat {
                cells[1] = zero; // north
                cells[5] = zero; // north east
                cells[6] = zero; // north west
            }
            if area.longitude.min < min_lon {
                cells[4] = zero; // west
                cells[8] = zero;
                cells[6] = zero;
            }
            if area.longitude.max > max_lon {
                cells[3] = zero; // east
                cells[7] = zero;
                cells[5] = zero;
            }
        }
        cells
    }

    /// The distance in metres from the centre to `(lon, lat)` if that
    /// point lies in the shape (`geoWithinShape`).
    pub fn distance_if_within(&self, lon: f64, lat: f64) -> Option<f64> {
        let (x1, y1) = self.xy;
        match self.kind {
            ShapeKind::Radius(r) => {
                let d = distance(x1, y1, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            ShapeKind::Box(w, h) => {
                let (width_m, height_m) = (w * self.conversion, h * self.conversion);
                if lat_distance(lat, y1) > height_m / 2.0 {
                    return None;
                }
                if distance(lon, lat, x1, lat) > width_m / 2.0 {
                    return None;
                }
                Some(distance(x1, y1, lon, lat))
            }
        }
    }
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine distance in metres (`geohashGetDistance`).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scores_and_strings_are_redis_s() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" 15.087269 37.502669
        // "Catania" on Redis 7.0: ZSCORE and GEOHASH replies.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(&geohash_string(3479099956230698.0).unwrap(), b"sqc8b49rny0");
        assert_eq!(&geohash_string(3479447370796909.0).unwrap(), b"sqdtr74hyu0");
        let (lon, lat) = decode_score(3479099956230698.0).unwrap();
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        let (lon2, lat2) = decode_score(3479447370796909.0).unwrap();
        // GEODIST Sicily Palermo Catania: "166274.1516".
        let d = distance(lon, lat, lon2, lat2);
        assert_eq!((d * 10000.0).round_ties_even() as i64, 1662741516);
        assert_eq!(score_of(181.0, 0.0), None);
        assert_eq!(score_of(0.0, 85.06), None);
    }

    #[test]
    fn neighbours_surround_the_cell() {
        let h = encode(13.361389, 38.115556, 10).unwrap();
        let a = decode(h).unwrap();
        let c = neighbours(h);
        let north = decode(c[1]).unwrap();
        assert!((north.latitude.min - a.latitude.max).abs() < 1e-9);
        let east = decode(c[3]).unwrap();
        assert!((east.longitude.min - a.longitude.max).abs() < 1e-9);
        let sw = decode(c[8]).unwrap();
        assert!((sw.latitude.max - a.latitude.min).abs() < 1e-9);
        assert!((sw.longitude.max - a.longitude.min).abs() < 1e-9);
    }

    proptest! {
        /// Encoding then decoding lands within one 52-bit cell of the
        /// position (under a metre).
        #[test]
        fn round_trip_is_close(lon in -180.0f64..180.0, lat in LAT_MIN..LAT_MAX) {
            let s = score_of(lon, lat).unwrap();
            let (x, y) = decode_score(s as f64).unwrap();
            prop_assert!(distance(lon, lat, x, y) < 1.0);
        }

        /// A search's cells hold every point within its radius (what the
        /// cell choice must guarantee).
        #[test]
        fn cells_cover_the_radius(
            lon in -179.0f64..179.0, lat in -80.0f64..80.0,
            r in 1.0f64..500_000.0, bearing in 0.0f64..360.0, frac in 0.0f64..1.0,
        ) {
            let shape = Shape { xy: (lon, lat), conversion: 1.0, kind: ShapeKind::Radius(r) };
            // A point at distance frac * r (great circle, bearing).
            let d = frac * r / EARTH_RADIUS_IN_METERS;
            let (la1, lo1, b) = (deg_rad(lat), deg_rad(lon), deg_rad(bearing));
            let la2 = (la1.sin() * d.cos() + la1.cos() * d.sin() * b.cos()).asin();
            let lo2 = lo1 + (b.sin() * d.sin() * la1.cos()).atan2(d.cos() - la1.sin() * la2.sin());
            let (plon, plat) = (rad_deg(lo2), rad_deg(la2));
            prop_assume!((-180.0..=180.0).contains(&plon) && (LAT_MIN..=LAT_MAX).contains(&plat));
            let score = score_of(plon, plat).unwrap();
            let (x, y) = decode_score(score as f64).unwrap();
            prop_assume!(shape.distance_if_within(x, y).is_some());
            let covered = shape.cells().iter().filter(|c| !c.is_zero()).any(|c| {
                let (min, max) = c.score_range();
                (min..max).contains(&score)
            });
            prop_assert!(covered);
        }
    }
}
