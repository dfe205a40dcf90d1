//! ASCII sparklines for `LATENCY GRAPH` (Redis's `sparkline.c`): each
//! sample is a column whose height, over `rows` rows of three steps each,
//! is its value between the sequence's minimum and maximum; labels are
//! printed vertically under their column.

const CHARSET_FILL: &[u8] = b"_o#";
const LABEL_MARGIN_TOP: usize = 1;

/// One column of the graph.
pub struct Sample {
    pub value: f64,
    pub label: Option<String>,
}

/// Renders `samples` in strips of `columns`, `rows` rows high, filled
/// below the line (Redis's `sparklineRender` with `SPARKLINE_FILL`).
pub fn render(samples: &[Sample], columns: usize, rows: usize) -> String {
    let mut out = String::new();
    if samples.is_empty() {
        return out;
    }
    let min = samples
        .iter()
        .map(|s| s.value)
        .fold(f64::INFINITY, f64::min);
    let max = samples
        .iter()
        .map(|s| s.value)
        .fold(f64::NEG_INFINITY, f64::max);
    let labels = samples.iter().any(|s| s.label.is_some());
    for (n, part) in samples.chunks(columns.max(1)).enumerate() {
        if n != 0 {
            out.push('\n');
        }
        render_range(&mut out, part, min, max, labels, rows);
    }
    out
}

fn render_range(out: &mut String, part: &[Sample], min: f64, max: f64, labels: bool, rows: usize) {
    let charset_len = CHARSET_FILL.len() as i64;
    let steps = charset_len * rows as i64;
    let relmax = if max - min == 0.0 { 1.0 } else { max - min };
    let mut row = 0usize;
    loop {
        let mut more = false;
        let mut chars = vec![b' '; part.len()];
        for (j, s) in part.iter().enumerate() {
            let mut step = ((s.value - min) * steps as f64 / relmax) as i64;
            step = step.clamp(0, steps - 1);
            if row < rows {
                let charidx = step - (rows - row - 1) as i64 * charset_len;
                more = true;
                if (0..charset_len).contains(&charidx) {
                    chars[j] = CHARSET_FILL[charidx as usize];
                } else if charidx >= charset_len {
                    chars[j] = b'|';
                }
            } else {
                if labels && row - rows < LABEL_MARGIN_TOP {
                    more = true;
                    break;
                }
                if let Some(label) = &s.label {
                    let at = row - rows - LABEL_MARGIN_TOP;
                    if let Some(&c) = label.as_bytes().get(at) {
                        more = true;
                        chars[j] = c;
                    }
                }
            }
        }
        if !more {
            break;
        }
        row += 1;
        out.push_str(&String::from_utf8_lossy(&chars));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_sequence_fills_upwards_with_labels_below() {
        let samples: Vec<Sample> = (0..3)
            .map(|i| Sample {
                value: i as f64,
                label: Some(format!("{i}s")),
            })
            .collect();
        // Worked through Redis's `sparklineRenderRange` by hand: 12 steps
        // over 4 rows, the top sample clamped to step 11.
        assert_eq!(
            render(&samples, 80, 4),
            "  #\n _|\n ||\n_||\n   \n012\nsss\n"
        );
    }
}
