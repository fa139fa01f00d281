//! The web page at `/`: the release matrix as a table and the Data Map as a bar chart, rendered
//! on the server (no JavaScript), in German or English by `Accept-Language`.
//!
//! Accessibility (WCAG 2.1 AA): `lang` on the document; tables with a caption and `scope`d
//! headers; state is said in words, not by colour alone; the chart is an `<svg role="img">` with
//! a title and description, followed by the same numbers as a table (its text alternative); the
//! colours have a contrast of at least 4.5:1 against white.

use std::fmt::Write as _;

use crate::datamap::{self, DataMap};
use crate::matrix::{self, Matrix};

/// A language of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }
}

/// The language an `Accept-Language` header (RFC 9110 §12.5.4) prefers among German and
/// English; English when it names neither.
pub fn negotiate(accept_language: Option<&str>) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for item in accept_language.unwrap_or("").split(',') {
        let mut parts = item.split(';').map(str::trim);
        let tag = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        let lang = match primary {
            "de" => Lang::De,
            "en" => Lang::En,
            _ => continue,
        };
        // The first of equal weights wins (the header's order is the client's order).
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l).unwrap_or(Lang::En)
}

struct Texts {
    title: &'static str,
    matrix: &'static str,
    matrix_caption: &'static str,
    site: &'static str,
    release: &'static str,
    last_report: &'static str,
    never: &'static str,
    stale: &'static str,
    current: &'static str,
    ready: &'static str,
    not_ready: &'static str,
    absent: &'static str,
    datamap: &'static str,
    datamap_rules: &'static str,
    chart_title: &'static str,
    chart_desc: &'static str,
    resource: &'static str,
    sites: &'static str,
    at_least: &'static str,
    fewer: &'static str,
    no_reports: &'static str,
    generated: &'static str,
}

const EN: Texts = Texts {
    title: "MIRACUM consortium hub",
    matrix: "Release matrix",
    matrix_caption: "Release, component health and last report per site",
    site: "Site",
    release: "Release",
    last_report: "Last report",
    never: "never",
    stale: "stale",
    current: "current",
    ready: "ready",
    not_ready: "not ready",
    absent: "not reported",
    datamap: "Data Map",
    datamap_rules: "Counts are obfuscated at each site (1–5 are reported as 5). A resource type is shown only when at least 3 sites report it; totals are rounded down to 0, 10, 100, 1k, 10k, 100k or 1M.",
    chart_title: "Data Map: total resources per type across sites",
    chart_desc: "Bar length grows by one step per power of ten of the rounded-down total. The table below lists the same values.",
    resource: "Resource type",
    sites: "Sites",
    at_least: "Total (at least)",
    fewer: "fewer than 3 sites",
    no_reports: "No site has reported yet.",
    generated: "Generated",
};

const DE: Texts = Texts {
    title: "MIRACUM-Konsortium-Hub",
    matrix: "Release-Matrix",
    matrix_caption: "Release, Zustand der Komponenten und letzter Bericht je Standort",
    site: "Standort",
    release: "Release",
    last_report: "Letzter Bericht",
    never: "nie",
    stale: "veraltet",
    current: "aktuell",
    ready: "bereit",
    not_ready: "nicht bereit",
    absent: "nicht gemeldet",
    datamap: "Data Map",
    datamap_rules: "Die Zahlen werden an jedem Standort verschleiert (1–5 wird als 5 gemeldet). Ein Ressourcentyp wird nur angezeigt, wenn mindestens 3 Standorte ihn melden; Summen werden auf 0, 10, 100, 1k, 10k, 100k oder 1M abgerundet.",
    chart_title: "Data Map: Ressourcen je Typ über alle Standorte",
    chart_desc: "Die Balkenlänge wächst um eine Stufe je Zehnerpotenz der abgerundeten Summe. Die Tabelle darunter enthält dieselben Werte.",
    resource: "Ressourcentyp",
    sites: "Standorte",
    at_least: "Summe (mindestens)",
    fewer: "weniger als 3 Standorte",
    no_reports: "Noch kein Standort hat berichtet.",
    generated: "Erstellt",
};

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bucket bound as people read it: 1,000 / 1.000 (thousands separators by language).
pub fn format_count(n: u64, lang: Lang) -> String {
    let digits = n.to_string();
    let sep = match lang {
        Lang::En => ',',
        Lang::De => '.',
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1a1a1a;background:#fff;max-width:70rem}\
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.5rem 0}caption{text-align:left;font-weight:600;padding:.25rem 0}\
th,td{border:1px solid #767676;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f0f0f0}\
.ok{color:#0b6b2e}.bad{color:#a4161a;font-weight:600}.muted{color:#595959}\
.num{text-align:right;font-variant-numeric:tabular-nums}";

/// The whole page.
pub fn render(matrix: &Matrix, datamap: &DataMap, lang: Lang) -> String {
    let t = match lang {
        Lang::En => &EN,
        Lang::De => &DE,
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
        lang.code(),
        t.title,
        t.title
    );
    let _ = writeln!(
        h,
        "<p class=\"muted\">{}: <time datetime=\"{}\">{}</time></p>",
        t.generated,
        matrix.generated_at.to_rfc3339(),
        matrix.generated_at.format("%Y-%m-%d %H:%M UTC")
    );
    matrix_section(&mut h, matrix, t);
    datamap_section(&mut h, datamap, t, lang);
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn matrix_section(h: &mut String, matrix: &Matrix, t: &Texts) {
    let _ = writeln!(
        h,
        "<section aria-labelledby=\"matrix\">\n<h2 id=\"matrix\">{}</h2>",
        t.matrix
    );
    let components = matrix::component_names(matrix);
    let _ = write!(
        h,
        "<table>\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th>",
        t.matrix_caption, t.site, t.release, t.last_report
    );
    for c in &components {
        let _ = write!(h, "<th scope=\"col\">{}</th>", escape(c));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for site in &matrix.sites {
        let name = site.display_name.as_deref().unwrap_or(&site.site_id);
        let _ = write!(h, "<tr><th scope=\"row\">{}</th>", escape(name));
        match &site.release {
            Some(r) => {
                let _ = write!(
                    h,
                    "<td>{} <span class=\"muted\" title=\"{}\">({}…)</span></td>",
                    escape(&r.name),
                    escape(&r.fingerprint),
                    escape(r.fingerprint.get(..12).unwrap_or(&r.fingerprint))
                );
            }
            None => {
                let _ = write!(h, "<td class=\"muted\">–</td>");
            }
        }
        match site.last_report {
            Some(at) => {
                let (class, word) = if site.stale {
                    ("bad", t.stale)
                } else {
                    ("ok", t.current)
                };
                let _ = write!(
                    h,
                    "<td><time datetime=\"{}\">{}</time> <span class=\"{class}\">({word})</span></td>",
                    at.to_rfc3339(),
                    at.format("%Y-%m-%d %H:%M")
                );
            }
            None => {
                let _ = write!(h, "<td class=\"bad\">{} ({})</td>", t.never, t.stale);
            }
        }
        for c in &components {
            match site.components.iter().find(|x| &x.name == c) {
                Some(x) => {
                    let (class, mark, word) = if x.ready {
                        ("ok", "✓", t.ready)
                    } else {
                        ("bad", "✗", t.not_ready)
                    };
                    let version = x
                        .version
                        .as_deref()
                        .map(|v| format!(" <span class=\"muted\">{}</span>", escape(v)))
                        .unwrap_or_default();
                    let _ = write!(
                        h,
                        "<td class=\"{class}\"><span aria-hidden=\"true\">{mark}</span> {word}{version}</td>"
                    );
                }
                None => {
                    let _ = write!(h, "<td class=\"muted\">{}</td>", t.absent);
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn datamap_section(h: &mut String, map: &DataMap, t: &Texts, lang: Lang) {
    let _ = writeln!(
        h,
        "<section aria-labelledby=\"datamap\">\n<h2 id=\"datamap\">{}</h2>\n<p>{}</p>",
        t.datamap, t.datamap_rules
    );
    if map.resource_types.is_empty() {
        let _ = writeln!(h, "<p>{}</p>\n</section>", t.no_reports);
        return;
    }
    // Bars: one step per bucket (a log scale: the buckets are powers of ten).
    let steps = (datamap::BUCKETS.len() - 1) as u64;
    let (label_w, bar_w, row_h) = (190u64, 420u64, 30u64);
    let height = row_h * map.resource_types.len() as u64 + 10;
    let width = label_w + bar_w + 120;
    let _ = writeln!(
        h,
        "<figure>\n<svg role=\"img\" aria-labelledby=\"chart-title\" aria-describedby=\"chart-desc\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"system-ui,sans-serif\" font-size=\"14\">\n\
         <title id=\"chart-title\">{}</title>\n<desc id=\"chart-desc\">{}</desc>",
        t.chart_title, t.chart_desc
    );
    for (i, e) in map.resource_types.iter().enumerate() {
        let y = 5 + row_h * i as u64;
        let text_y = y + 19;
        let _ = writeln!(
            h,
            "<text x=\"0\" y=\"{text_y}\" fill=\"#1a1a1a\">{}</text>",
            escape(&e.resource_type)
        );
        match e.at_least {
            Some(at_least) => {
                let step = datamap::BUCKETS
                    .iter()
                    .position(|&b| b == at_least)
                    .unwrap_or(0) as u64;
                let w = (bar_w * step / steps).max(2);
                let _ = writeln!(
                    h,
                    "<rect x=\"{label_w}\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"#1f5fa8\"/>\n\
                     <text x=\"{}\" y=\"{text_y}\" fill=\"#1a1a1a\">≥ {}</text>",
                    y + 4,
                    row_h - 10,
                    label_w + w + 8,
                    format_count(at_least, lang)
                );
            }
            None => {
                let _ = writeln!(
                    h,
                    "<text x=\"{label_w}\" y=\"{text_y}\" fill=\"#595959\" font-style=\"italic\">{}</text>",
                    t.fewer
                );
            }
        }
    }
    h.push_str("</svg>\n");
    let _ = write!(
        h,
        "<figcaption>\n<table>\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
        t.datamap, t.resource, t.sites, t.at_least
    );
    for e in &map.resource_types {
        let _ = write!(h, "<tr><th scope=\"row\">{}</th>", escape(&e.resource_type));
        match (e.sites, e.at_least) {
            (Some(sites), Some(at_least)) => {
                let _ = write!(
                    h,
                    "<td class=\"num\">{sites}</td><td class=\"num\">≥ {}</td>",
                    format_count(at_least, lang)
                );
            }
            _ => {
                let _ = write!(h, "<td colspan=\"2\" class=\"muted\">{}</td>", t.fewer);
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</figcaption>\n</figure>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_german_or_english() {
        let cases = [
            (None, Lang::En),
            (Some(""), Lang::En),
            (Some("de-DE,de;q=0.9,en;q=0.8"), Lang::De),
            (Some("en-US,en;q=0.9,de;q=0.8"), Lang::En),
            (Some("fr-FR, de;q=0.5"), Lang::De),
            (Some("fr-FR"), Lang::En),
            (Some("de;q=0, en;q=0.1"), Lang::En),
            (Some("en;q=0.4, de;q=0.7"), Lang::De),
        ];
        for (header, lang) in cases {
            assert_eq!(negotiate(header), lang, "{header:?}");
        }
    }

    #[test]
    fn counts_and_escaping() {
        assert_eq!(format_count(1_000_000, Lang::En), "1,000,000");
        assert_eq!(format_count(10_000, Lang::De), "10.000");
        assert_eq!(format_count(100, Lang::De), "100");
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
