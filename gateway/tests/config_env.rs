//! Configuration: TOML round trip, `PROV_*` environment overrides, key file permissions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;

use prov_gateway::config::Config;
use prov_gateway::keys;

#[test]
fn toml_round_trip_and_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.keys.operators.insert("site".into(), "04ab".into());
    let path = dir.path().join("prov.toml");
    std::fs::write(&path, config.to_toml().unwrap()).unwrap();
    assert_eq!(Config::from_file(&path).unwrap(), config);

    let env: HashMap<&str, &str> = HashMap::from([
        ("PROV_DATA_DIR", "/srv/prov"),
        ("PROV_MQTT_URL", "mqtt://broker:1884"),
        ("PROV_HTTP_LISTEN", "127.0.0.1:0"),
        ("PROV_BATCH_MAX_ENTRIES", "42"),
        ("PROV_BATCH_MAX_DELAY_MS", "7"),
    ]);
    config
        .apply_env(|k| env.get(k).map(|v| (*v).to_owned()))
        .unwrap();
    assert_eq!(config.data_dir.to_str(), Some("/srv/prov"));
    assert_eq!(config.mqtt.url.as_deref(), Some("mqtt://broker:1884"));
    assert_eq!(config.http.listen.port(), 0);
    assert_eq!(
        (config.batch.max_entries, config.batch.max_delay_ms),
        (42, 7)
    );

    let bad: HashMap<&str, &str> = HashMap::from([("PROV_BATCH_MAX_ENTRIES", "many")]);
    assert!(
        config
            .apply_env(|k| bad.get(k).map(|v| (*v).to_owned()))
            .is_err()
    );
    assert!(toml::from_str::<Config>("unknown_field = 1").is_err());
}

#[test]
fn key_files_are_private_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.key");
    keys::create_gateway_key(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(keys::create_gateway_key(&path).is_err());
    keys::load_gateway_signer(&path, "test.example/log/1").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        keys::load_gateway_signer(&path, "test.example/log/1"),
        Err(keys::KeyFileError::Permissions { .. })
    ));
}

#[test]
fn broker_urls() {
    use prov_gateway::ingest::parse_url;
    assert_eq!(parse_url("mqtt://h:1884").unwrap(), ("h".into(), 1884));
    assert_eq!(
        parse_url("tcp://10.0.0.1:1").unwrap(),
        ("10.0.0.1".into(), 1)
    );
    assert_eq!(parse_url("h").unwrap(), ("h".into(), 1883));
    assert!(parse_url("mqtt://:1").is_err());
    assert!(parse_url("mqtt://h:x").is_err());
}
