//! Printable QR labels: `GET /api/v1/labels/{digital link path}.png` and `.svg`.
//!
//! The code encodes the full Digital Link URI under the resolver base URL of the configuration
//! (`resolver.base_url`, default `http://{HTTP listen address}`), so that a phone scanning the
//! printed label lands on this resolver; the canonical key (SPEC §1) is what the path names,
//! whatever qualifier form the request used. Under the code, the human-readable text: the GS1
//! element strings (`(01) …`, `(21) …`) and the URI.
//!
//! Why draw the PNG ourselves rather than with `qrcode`'s renderer: the text must sit under the
//! code on one bitmap, so modules and glyphs are drawn into one `image::GrayImage` (glyphs from
//! `font8x8`'s public-domain 8×8 font). Error correction level M: a label survives a scuff or
//! a fold. The SVG is the same layout, with `<text>` for the text.

use std::fmt::Write as _;
use std::sync::Arc;

use image::{GrayImage, ImageEncoder as _, Luma};
use prov_schemas::digital_link::{CANONICAL_HOST, DigitalLink};
use qrcode::{Color, EcLevel, QrCode};
use warp::Filter as _;
use warp::http::StatusCode;
use warp::reply::Reply as _;

use crate::resolver::{Resolver, error};

type Resp = warp::reply::Response;

/// Pixels per QR module in the PNG.
const MODULE_PX: u32 = 8;
/// Quiet zone around the code, in modules (ISO/IEC 18004 asks for 4).
const QUIET: u32 = 4;
/// Scale of the element-string lines (8×8 glyphs drawn at 2×).
const BIG: u32 = 2;
/// Space between text lines, pixels.
const LINE_GAP: u32 = 6;

/// A label could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The URI does not fit in a QR code.
    #[error("QR encoding: {0}")]
    Qr(#[from] qrcode::types::QrError),
    /// PNG encoding failed.
    #[error("PNG encoding: {0}")]
    Png(#[from] image::ImageError),
    /// The image is too large to describe.
    #[error("label too large")]
    TooLarge,
}

/// What a label shows: the URI in the code, and the text lines under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The URI the code encodes.
    pub uri: String,
    /// GS1 element strings in human-readable form, one per line (`(01) 09506000134352`).
    pub hri: Vec<String>,
}

impl Label {
    /// The label of `id` under the resolver `base_url`.
    pub fn new(id: &DigitalLink, base_url: &str) -> Label {
        let uri = id.with_host(base_url);
        // The canonical path is `/{ai}/{value}/{ai}/{value}`: the HRI lines, decoded.
        let canonical = id.canonical();
        let path = canonical.strip_prefix(CANONICAL_HOST).unwrap_or_default();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let hri = parts
            .chunks(2)
            .map(|pair| match pair {
                [ai, value] => format!("({ai}) {}", percent_decode(value)),
                other => other.join(" "),
            })
            .collect();
        Label { uri, hri }
    }

    fn code(&self) -> Result<QrCode, LabelError> {
        Ok(QrCode::with_error_correction_level(
            self.uri.as_bytes(),
            EcLevel::M,
        )?)
    }

    /// The layout: (code modules, image width, lines of the URI wrapped, height).
    fn layout(&self, code: &QrCode) -> Result<Layout, LabelError> {
        let modules = u32::try_from(code.width()).map_err(|_| LabelError::TooLarge)?;
        let code_px = (modules + 2 * QUIET) * MODULE_PX;
        let margin = QUIET * MODULE_PX;
        let widest_hri = self.hri.iter().map(|l| l.len()).max().unwrap_or(0);
        let hri_px = u32::try_from(widest_hri).map_err(|_| LabelError::TooLarge)? * 8 * BIG;
        let width = code_px.max(hri_px + 2 * margin);
        let per_line = usize::try_from((width - 2 * margin) / 8)
            .map_err(|_| LabelError::TooLarge)?
            .max(1);
        let uri_lines: Vec<String> = self
            .uri
            .as_bytes()
            .chunks(per_line)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let hri_h =
            u32::try_from(self.hri.len()).map_err(|_| LabelError::TooLarge)? * (8 * BIG + LINE_GAP);
        let uri_h =
            u32::try_from(uri_lines.len()).map_err(|_| LabelError::TooLarge)? * (8 + LINE_GAP);
        Ok(Layout {
            modules,
            width,
            margin,
            code_px,
            uri_lines,
            height: code_px + hri_h + LINE_GAP + uri_h + margin,
        })
    }

    /// The label as a PNG (8-bit grey).
    pub fn png(&self) -> Result<Vec<u8>, LabelError> {
        let code = self.code()?;
        let l = self.layout(&code)?;
        let mut img = GrayImage::from_pixel(l.width, l.height, Luma([255]));
        let offset_x = (l.width - l.code_px) / 2 + QUIET * MODULE_PX;
        let colors = code.to_colors();
        let modules = l.modules as usize;
        for (i, color) in colors.iter().enumerate() {
            if *color != Color::Dark {
                continue;
            }
            let (mx, my) = ((i % modules) as u32, (i / modules) as u32);
            for dy in 0..MODULE_PX {
                for dx in 0..MODULE_PX {
                    img.put_pixel(
                        offset_x + mx * MODULE_PX + dx,
                        QUIET * MODULE_PX + my * MODULE_PX + dy,
                        Luma([0]),
                    );
                }
            }
        }
        let mut y = l.code_px;
        for line in &self.hri {
            draw_text(&mut img, l.margin, y, line, BIG);
            y += 8 * BIG + LINE_GAP;
        }
        y += LINE_GAP;
        for line in &l.uri_lines {
            draw_text(&mut img, l.margin, y, line, 1);
            y += 8 + LINE_GAP;
        }
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(
            img.as_raw(),
            l.width,
            l.height,
            image::ExtendedColorType::L8,
        )?;
        Ok(out)
    }

    /// The label as SVG (one path for the modules, `<text>` for the text).
    pub fn svg(&self) -> Result<String, LabelError> {
        let code = self.code()?;
        let l = self.layout(&code)?;
        let offset_x = (l.width - l.code_px) / 2 + QUIET * MODULE_PX;
        let modules = l.modules as usize;
        let colors = code.to_colors();
        let mut path = String::new();
        // One horizontal run of dark modules per path segment.
        for (row, line) in colors.chunks(modules).enumerate() {
            let mut x = 0;
            while x < modules {
                if line[x] != Color::Dark {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < modules && line[x] == Color::Dark {
                    x += 1;
                }
                let _ = write!(
                    path,
                    "M{} {}h{}v{}h-{}z",
                    offset_x as usize + start * MODULE_PX as usize,
                    (QUIET as usize + row) * MODULE_PX as usize,
                    (x - start) * MODULE_PX as usize,
                    MODULE_PX,
                    (x - start) * MODULE_PX as usize,
                );
            }
        }
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\">\n\
             <title>{label}</title>\n\
             <rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\n\
             <path fill=\"#000\" shape-rendering=\"crispEdges\" d=\"{path}\"/>\n",
            w = l.width,
            h = l.height,
            label = xml_escape(&self.uri),
        );
        let mut y = l.code_px;
        for line in &self.hri {
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" font-family=\"monospace\" font-size=\"{}\">{}</text>",
                l.margin,
                y + 8 * BIG,
                8 * BIG,
                xml_escape(line)
            );
            y += 8 * BIG + LINE_GAP;
        }
        y += LINE_GAP;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-family=\"monospace\" font-size=\"9\">{}</text>",
            l.margin,
            y + 8,
            xml_escape(&self.uri)
        );
        svg.push_str("</svg>\n");
        Ok(svg)
    }
}

struct Layout {
    modules: u32,
    width: u32,
    margin: u32,
    code_px: u32,
    uri_lines: Vec<String>,
    height: u32,
}

/// Draws `text` (ASCII; anything else as `?`) at `(x, y)` with 8×8 glyphs scaled by `scale`,
/// clipped to the image.
fn draw_text(img: &mut GrayImage, x: u32, y: u32, text: &str, scale: u32) {
    let (w, h) = img.dimensions();
    for (i, ch) in text.chars().enumerate() {
        let index = if ch.is_ascii() {
            ch as usize
        } else {
            '?' as usize
        };
        let Some(glyph) = font8x8::legacy::BASIC_LEGACY.get(index) else {
            continue;
        };
        let gx = x + (i as u32) * 8 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for sy in 0..scale {
                    for sx in 0..scale {
                        let (px, py) = (gx + col * scale + sx, y + row as u32 * scale + sy);
                        if px < w && py < h {
                            img.put_pixel(px, py, Luma([0]));
                        }
                    }
                }
            }
        }
    }
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes `%XX` escapes of a canonical path segment (always valid UTF-8 ASCII here).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The label routes.
pub fn routes(
    resolver: Arc<Resolver>,
) -> impl warp::Filter<Extract = (Resp,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    warp::path!("api" / "v1" / "labels" / ..)
        .and(warp::get())
        .and(warp::path::tail())
        .map(move |tail: warp::path::Tail| {
            let path = tail.as_str();
            let (id, format) = if let Some(p) = path.strip_suffix(".png") {
                (p, "png")
            } else if let Some(p) = path.strip_suffix(".svg") {
                (p, "svg")
            } else {
                return error(
                    StatusCode::NOT_FOUND,
                    "unknown label format",
                    "ask for {digital link path}.png or .svg",
                );
            };
            let link = match DigitalLink::parse(&format!("{CANONICAL_HOST}/{id}")) {
                Ok(l) => l,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "malformed identifier",
                        &e.to_string(),
                    );
                }
            };
            let label = Label::new(&link, &resolver.base_url);
            let drawn = match format {
                "png" => label.png().map(|b| (b, "image/png")),
                _ => label.svg().map(|s| (s.into_bytes(), "image/svg+xml")),
            };
            match drawn {
                Ok((body, content_type)) => {
                    warp::reply::with_header(body, "content-type", content_type).into_response()
                }
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "label could not be drawn",
                    &e.to_string(),
                ),
            }
        })
}
