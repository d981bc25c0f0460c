//! Writes the browser tests' fake-camera fixture, `scanner-web/tests/fixtures/qr.mjpeg`: a QR
//! code of a GS1 Digital Link as Chromium's `--use-file-for-fake-video-capture` reads it (MJPEG =
//! JPEG frames one after the other; Chromium loops them).
//!
//! The frame is 640×480 RGB, white, with the code centred at the largest whole number of pixels
//! per module that fits with a 4-module quiet zone (nearest-neighbour: every module a sharp
//! square, as a printed label seen head-on). Deterministic: the same arguments write the same
//! bytes, so the committed file can be regenerated and compared.
//!
//! Usage: `cargo run -p prov-tests --bin gen-qr-fixture -- [--uri URI] [--frames N] [--out PATH]`.
//! The default URI is the brand-host form, with a lot qualifier and a query attribute, of the
//! first item `prov demo --run-tag QR` makes (see `scanner-web/tests/fixtures/README.md`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, RgbImage};
use qrcode::{Color, EcLevel, QrCode};

/// The Digital Link the committed fixture carries.
const DEFAULT_URI: &str =
    "https://brand.example.com/01/09506000134352/10/PWDQR1-1/21/QR1000001?17=281130";
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
const QUIET_ZONE: u32 = 4;
const JPEG_QUALITY: u8 = 90;

struct Args {
    uri: String,
    frames: u32,
    out: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        uri: DEFAULT_URI.into(),
        frames: 1,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../scanner-web/tests/fixtures/qr.mjpeg"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--uri" => args.uri = value()?,
            "--frames" => args.frames = value()?.parse().context("--frames")?,
            "--out" => args.out = PathBuf::from(value()?),
            other => bail!("unknown argument {other:?} (--uri, --frames, --out)"),
        }
    }
    if args.frames == 0 {
        bail!("--frames must be at least 1");
    }
    Ok(args)
}

/// One frame: the code of `uri`, centred on white.
fn frame(uri: &str) -> Result<RgbImage> {
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .context("the URI does not fit in a QR code")?;
    let modules = u32::try_from(code.width()).context("QR width")?;
    let span = modules + 2 * QUIET_ZONE;
    let scale = WIDTH.min(HEIGHT) / span;
    if scale == 0 {
        bail!("a {modules}-module code does not fit {WIDTH}×{HEIGHT}");
    }
    let colors = code.to_colors();
    let left = (WIDTH - modules * scale) / 2;
    let top = (HEIGHT - modules * scale) / 2;
    Ok(RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let dark = x >= left
            && y >= top
            && (x - left) / scale < modules
            && (y - top) / scale < modules
            && colors[(((y - top) / scale) * modules + (x - left) / scale) as usize] == Color::Dark;
        if dark {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    }))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let image = frame(&args.uri)?;
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode(image.as_raw(), WIDTH, HEIGHT, ExtendedColorType::Rgb8)
        .context("encoding the JPEG frame")?;
    let mut mjpeg = Vec::with_capacity(jpeg.len() * args.frames as usize);
    for _ in 0..args.frames {
        mjpeg.extend_from_slice(&jpeg);
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, &mjpeg).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} ({} bytes, {} frame(s) of {WIDTH}×{HEIGHT}) for {}",
        args.out.display(),
        mjpeg.len(),
        args.frames,
        args.uri
    );
    Ok(())
}
