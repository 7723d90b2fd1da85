//! kubectl's tab-writer (liggitt/tabwriter as kubectl configures it: min width 6, padding 3,
//! padded with spaces, remembered widths): every cell but a row's last is padded to the column's
//! width; widths only grow across flushes, so watch output stays aligned.

/// Minimum column width (kubectl's `tabwriterMinWidth`).
const MIN_WIDTH: usize = 6;
/// Spaces between columns (kubectl's `tabwriterPadding`).
const PADDING: usize = 3;

/// Buffers rows of cells and renders them aligned.
#[derive(Debug, Default)]
pub struct TabWriter {
    widths: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl TabWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the buffered rows and forgets them (widths are remembered).
    pub fn flush(&mut self) -> String {
        for row in &self.rows {
            let n = row.len().saturating_sub(1);
            if self.widths.len() < n {
                self.widths.resize(n, 0);
            }
            for (i, cell) in row.iter().take(n).enumerate() {
                let w = (cell.chars().count() + PADDING).max(MIN_WIDTH);
                self.widths[i] = self.widths[i].max(w);
            }
        }
        let mut out = String::new();
        for row in self.rows.drain(..) {
            let last = row.len().saturating_sub(1);
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i < last {
                    let pad = self.widths[i].saturating_sub(cell.chars().count());
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cells: &[&[&str]]) -> String {
        let mut tw = TabWriter::new();
        for r in cells {
            tw.row(r.iter().map(|s| s.to_string()).collect());
        }
        tw.flush()
    }

    #[test]
    fn matches_kubectl_get_namespaces() {
        // `kubectl get ns` on a fresh cluster, byte for byte.
        let got = rows(&[
            &["NAME", "STATUS", "AGE"],
            &["default", "Active", "5m"],
            &["kube-node-lease", "Active", "5m"],
            &["kube-public", "Active", "5m"],
            &["kube-system", "Active", "5m"],
        ]);
        let want = "NAME              STATUS   AGE\n\
                    default           Active   5m\n\
                    kube-node-lease   Active   5m\n\
                    kube-public       Active   5m\n\
                    kube-system       Active   5m\n";
        assert_eq!(got, want);
    }

    #[test]
    fn matches_kubectl_get_deployments_with_short_cells() {
        // Short columns are at least MIN_WIDTH wide: "UP-TO-DATE" sets its width, "AGE" is last.
        let got = rows(&[&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], &["web", "2/2", "2", "2", "10s"]]);
        let want = "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    2/2     2            2           10s\n";
        assert_eq!(got, want);
    }

    #[test]
    fn widths_are_remembered_across_flushes() {
        let mut tw = TabWriter::new();
        tw.row(vec!["NAME".into(), "AGE".into()]);
        tw.row(vec!["a-long-name".into(), "1s".into()]);
        tw.flush();
        tw.row(vec!["b".into(), "2s".into()]);
        assert_eq!(tw.flush(), "b             2s\n");
    }
}

/// Go's text/tabwriter over a whole text (cells end at '\t', lines at '\n'), with its column
/// blocks: a column's width covers only consecutive lines that have a cell in it, so a line
/// without tabs ends the alignment above it. kubectl describe uses min width 0, padding 2.
pub fn align(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split_terminator('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, minwidth, padding, &mut out);
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(&lines[line0..this], widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(&lines[line0..line1], widths, out);
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], out: &mut String) {
    for line in lines {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let pad = widths[j].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod align_tests {
    use super::align;

    #[test]
    fn lines_without_tabs_end_a_column_block() {
        let text = "Name:\tweb\nNamespace:\tdefault\nPod Template:\n  Labels:\tapp=web\n  Containers:\n";
        let want = "Name:       web\nNamespace:  default\nPod Template:\n  Labels:  app=web\n  Containers:\n";
        assert_eq!(align(text, 0, 2), want);
    }

    #[test]
    fn nested_columns_align_within_their_block() {
        let text = "Events:\n  Type\tReason\tAge\n  ----\t------\t----\n  Normal\tScalingReplicaSet\t5s\n";
        let want = "Events:\n  Type    Reason             Age\n  ----    ------             ----\n  Normal  ScalingReplicaSet  5s\n";
        assert_eq!(align(text, 0, 2), want);
    }
}
