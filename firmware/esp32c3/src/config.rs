//! Build-time configuration: environment variables read with `option_env!` when the firmware is
//! compiled (cargo rebuilds when one changes), checked once at boot.
//!
//! Every knob has a default so that a plain `cargo build --release` succeeds (CI); the defaults
//! name no real network. The README lists them.

use core::net::Ipv4Addr;

use prov_firmware::device::check_site;
use prov_firmware::roles::ColdChainConfig;
use prov_schemas::digital_link::Gln;
use prov_schemas::event::{BizTransaction, BizTransactionType, TzOffset, Uom, Uri};
use prov_schemas::keys::DeviceId;

/// The raw value of a knob, or its default.
macro_rules! knob {
    ($name:literal, $default:literal) => {
        match option_env!($name) {
            Some(value) => value,
            None => $default,
        }
    };
}

/// Wi-Fi network name.
pub const WIFI_SSID: &str = knob!("WIFI_SSID", "prov-line");
/// Wi-Fi passphrase (WPA2-Personal); empty for an open network.
pub const WIFI_PASSWORD: &str = knob!("WIFI_PASSWORD", "");
/// The broker's IPv4 address (no DNS on the line network).
pub const MQTT_HOST: &str = knob!("MQTT_HOST", "192.168.1.10");
/// The broker's TCP port (plain MQTT).
pub const MQTT_PORT: &str = knob!("MQTT_PORT", "1883");
/// MQTT user name, if the broker wants one (empty: none).
pub const MQTT_USER: &str = knob!("MQTT_USER", "");
/// MQTT password (empty: none).
pub const MQTT_PASSWORD: &str = knob!("MQTT_PASSWORD", "");
/// The site: the third topic level (SPEC §3), same rule as a device id.
pub const SITE: &str = knob!("SITE", "site-a");
/// The device id (SPEC §1): COSE kid, `prov:device`, topic level and MQTT client id.
pub const DEVICE_ID: &str = knob!("DEVICE_ID", "esp32c3-dev");
/// The station's role on the line.
pub const ROLE: &str = knob!("ROLE", "commissioning");
/// GLN-13 of the station (`readPoint`, and `bizLocation` except when shipping).
pub const READ_POINT_GLN: &str = knob!("READ_POINT_GLN", "9506000134376");
/// The site's `eventTimeZoneOffset`, `±HH:MM`.
pub const TZ_OFFSET: &str = knob!("TZ_OFFSET", "+00:00");
/// Where the device key is: `flash` (the `provkey` partition) or `atecc608`.
pub const SIGNER: &str = knob!("SIGNER", "flash");
/// The ATECC608 slot holding the device's P-256 private key.
pub const ATECC_SLOT: &str = knob!("ATECC_SLOT", "0");
/// The ATECC608's 7-bit I2C address (hex or decimal; factory default 0x60).
pub const ATECC_ADDRESS: &str = knob!("ATECC_ADDRESS", "0x60");
/// The SNTP server's IPv4 address; empty: the DHCP default gateway.
pub const SNTP_SERVER: &str = knob!("SNTP_SERVER", "");
/// Baud rate of the scanner's serial line.
pub const SCANNER_BAUD: &str = knob!("SCANNER_BAUD", "9600");
/// Packing: items per case (0: no fixed capacity, the next case label closes the case).
pub const CASE_CAPACITY: &str = knob!("CASE_CAPACITY", "0");
/// Palletizing: cases per pallet (0: the core's maximum; the trigger closes earlier).
pub const PALLET_CAPACITY: &str = knob!("PALLET_CAPACITY", "0");
/// Shipping: the business transaction URI the dock ships against (empty: none, shipping scans
/// are refused until one is configured).
pub const SHIP_ORDER: &str = knob!("SHIP_ORDER", "");
/// Shipping: the order's CBV type (`po`, `desadv`, `bol`…; empty: unstated).
pub const SHIP_ORDER_TYPE: &str = knob!("SHIP_ORDER_TYPE", "po");
/// Cold chain: seconds between two SHT4x readings.
pub const COLDCHAIN_PERIOD_S: &str = knob!("COLDCHAIN_PERIOD_S", "300");
/// Cold chain: upper temperature limit in milli-°C.
pub const COLDCHAIN_MAX_MC: &str = knob!("COLDCHAIN_MAX_MC", "8000");
/// Cold chain: lower temperature limit in milli-°C (empty: none).
pub const COLDCHAIN_MIN_MC: &str = knob!("COLDCHAIN_MIN_MC", "0");
/// Transformation: quantity recorded for each input lot scanned.
pub const TRANSFORM_INPUT_QTY: &str = knob!("TRANSFORM_INPUT_QTY", "1");
/// Transformation: quantity recorded for the output lot.
pub const TRANSFORM_OUTPUT_QTY: &str = knob!("TRANSFORM_OUTPUT_QTY", "1");
/// Transformation: UN/CEFACT unit of both quantities (empty: a count).
pub const TRANSFORM_UOM: &str = knob!("TRANSFORM_UOM", "");

/// The station's role (`ROLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Items come into existence.
    Commissioning,
    /// Items into cases.
    Packing,
    /// Cases onto pallets.
    Palletizing,
    /// Units onto the truck.
    Shipping,
    /// A cold room's sensor.
    ColdChain,
    /// Lots in, a lot out.
    Transformation,
}

/// Where the key is (`SIGNER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerKind {
    /// The `provkey` flash partition.
    Flash,
    /// An ATECC608 on I2C0.
    Atecc608,
}

/// A knob with a value the firmware cannot use.
#[derive(Debug, Clone, Copy)]
pub struct ConfigError {
    /// The environment variable.
    pub knob: &'static str,
    /// Its value.
    pub value: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub wifi_ssid: &'static str,
    pub wifi_password: &'static str,
    pub mqtt_host: Ipv4Addr,
    pub mqtt_port: u16,
    pub mqtt_user: Option<&'static str>,
    pub mqtt_password: Option<&'static str>,
    pub site: &'static str,
    pub device_id: DeviceId,
    pub role: Role,
    pub read_point: Gln,
    pub tz: TzOffset,
    pub signer: SignerKind,
    pub atecc_slot: u8,
    pub atecc_address: u8,
    pub sntp_server: Option<Ipv4Addr>,
    pub scanner_baud: u32,
    pub case_capacity: Option<u32>,
    pub pallet_capacity: usize,
    pub ship_order: Option<BizTransaction>,
    pub coldchain_period_s: u64,
    pub coldchain: ColdChainConfig,
    pub transform_input_qty: f64,
    pub transform_output_qty: f64,
    pub transform_uom: Option<Uom>,
}

fn bad(knob: &'static str, value: &'static str, problem: &'static str) -> ConfigError {
    ConfigError {
        knob,
        value,
        problem,
    }
}

fn non_empty(value: &'static str) -> Option<&'static str> {
    (!value.is_empty()).then_some(value)
}

fn number<T: core::str::FromStr>(
    knob: &'static str,
    value: &'static str,
) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| bad(knob, value, "not a number in range"))
}

fn ipv4(knob: &'static str, value: &'static str) -> Result<Ipv4Addr, ConfigError> {
    value
        .parse()
        .map_err(|_| bad(knob, value, "not a dotted IPv4 address"))
}

fn byte(knob: &'static str, value: &'static str) -> Result<u8, ConfigError> {
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.map_err(|_| bad(knob, value, "not a byte (decimal or 0x hex)"))
}

/// Parses and checks every knob.
pub fn load() -> Result<Config, ConfigError> {
    let device_id = DeviceId::new(DEVICE_ID)
        .map_err(|_| bad("DEVICE_ID", DEVICE_ID, "want [a-z0-9][a-z0-9._-]{0,63}"))?;
    check_site(SITE).map_err(|_| bad("SITE", SITE, "want [a-z0-9][a-z0-9._-]{0,63}"))?;
    let role = match ROLE {
        "commissioning" => Role::Commissioning,
        "packing" => Role::Packing,
        "palletizing" => Role::Palletizing,
        "shipping" => Role::Shipping,
        "coldchain" => Role::ColdChain,
        "transformation" => Role::Transformation,
        _ => {
            return Err(bad(
                "ROLE",
                ROLE,
                "want commissioning|packing|palletizing|shipping|coldchain|transformation",
            ));
        }
    };
    let signer = match SIGNER {
        "flash" => SignerKind::Flash,
        "atecc608" => SignerKind::Atecc608,
        _ => return Err(bad("SIGNER", SIGNER, "want flash|atecc608")),
    };
    let atecc_slot = byte("ATECC_SLOT", ATECC_SLOT)?;
    if atecc_slot > prov_firmware::drivers::atecc608::MAX_SLOT {
        return Err(bad("ATECC_SLOT", ATECC_SLOT, "slots are 0..=15"));
    }
    let ship_order = match non_empty(SHIP_ORDER) {
        None => None,
        Some(uri) => Some(BizTransaction {
            kind: match non_empty(SHIP_ORDER_TYPE) {
                None => None,
                Some(kind) => Some(
                    BizTransactionType::parse(kind)
                        .map_err(|_| bad("SHIP_ORDER_TYPE", kind, "not a CBV 2.0 type"))?,
                ),
            },
            biz_transaction: Uri::parse(uri)
                .map_err(|_| bad("SHIP_ORDER", uri, "not an absolute URI"))?,
        }),
    };
    let case_capacity: u32 = number("CASE_CAPACITY", CASE_CAPACITY)?;
    let coldchain_period_s: u64 = number("COLDCHAIN_PERIOD_S", COLDCHAIN_PERIOD_S)?;
    if coldchain_period_s == 0 {
        return Err(bad("COLDCHAIN_PERIOD_S", COLDCHAIN_PERIOD_S, "must be > 0"));
    }
    let quantity = |knob, value| -> Result<f64, ConfigError> {
        let q: f64 = number(knob, value)?;
        if q.is_finite() && q > 0.0 {
            Ok(q)
        } else {
            Err(bad(knob, value, "must be positive"))
        }
    };
    Ok(Config {
        wifi_ssid: WIFI_SSID,
        wifi_password: WIFI_PASSWORD,
        mqtt_host: ipv4("MQTT_HOST", MQTT_HOST)?,
        mqtt_port: number("MQTT_PORT", MQTT_PORT)?,
        mqtt_user: non_empty(MQTT_USER),
        mqtt_password: non_empty(MQTT_PASSWORD),
        site: SITE,
        device_id,
        role,
        read_point: Gln::parse(READ_POINT_GLN).map_err(|_| {
            bad(
                "READ_POINT_GLN",
                READ_POINT_GLN,
                "not a GLN-13 with check digit",
            )
        })?,
        tz: TzOffset::parse(TZ_OFFSET).map_err(|_| bad("TZ_OFFSET", TZ_OFFSET, "want ±HH:MM"))?,
        signer,
        atecc_slot,
        atecc_address: byte("ATECC_ADDRESS", ATECC_ADDRESS)?,
        sntp_server: match non_empty(SNTP_SERVER) {
            None => None,
            Some(server) => Some(ipv4("SNTP_SERVER", server)?),
        },
        scanner_baud: number("SCANNER_BAUD", SCANNER_BAUD)?,
        case_capacity: (case_capacity > 0).then_some(case_capacity),
        pallet_capacity: number("PALLET_CAPACITY", PALLET_CAPACITY)?,
        ship_order,
        coldchain_period_s,
        coldchain: ColdChainConfig {
            max_millicelsius: number("COLDCHAIN_MAX_MC", COLDCHAIN_MAX_MC)?,
            min_millicelsius: match non_empty(COLDCHAIN_MIN_MC) {
                None => None,
                Some(min) => Some(number("COLDCHAIN_MIN_MC", min)?),
            },
            sensor_id: None,
        },
        transform_input_qty: quantity("TRANSFORM_INPUT_QTY", TRANSFORM_INPUT_QTY)?,
        transform_output_qty: quantity("TRANSFORM_OUTPUT_QTY", TRANSFORM_OUTPUT_QTY)?,
        transform_uom: match non_empty(TRANSFORM_UOM) {
            None => None,
            Some(code) => Some(
                Uom::parse(code).map_err(|_| bad("TRANSFORM_UOM", code, "not a UN/CEFACT code"))?,
            ),
        },
    })
}
