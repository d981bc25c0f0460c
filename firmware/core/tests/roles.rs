//! The line roles: each role's state machine, and every event they produce signed by a device,
//! verified with the core's verifier and checked against the JSON Schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod device_common;

use std::collections::BTreeMap;

use device_common::*;
use prov_firmware::drivers::sht4x::Measurement;
use prov_firmware::roles::{
    ColdChain, ColdChainConfig, Commissioning, Draft, MAX_CASES_PER_PALLET, Packing, Palletizing,
    Presence, RoleError, Shipping, Transformation,
};
use prov_schemas::checked::CheckedEvent;
use prov_schemas::digital_link::{DigitalLink, Gtin, IdKind, Serial};
use prov_schemas::event::{
    Action, BizStep, BizTransaction, BizTransactionType, Destination, Disposition, EventType, Ilmd,
    IlmdValue, MeasurementType, SensorAlert, Source, SourceDestType, Uom, Uri,
};

/// Signs `drafts` on a fresh device named `name`; returns the verified events.
fn sign_all(name: &str, drafts: Vec<Draft>) -> Vec<CheckedEvent> {
    let mut device = new_device(name);
    for draft in drafts {
        device.record(draft).unwrap();
    }
    let events = verified_outbox(&mut device);
    check_json_schema(&events);
    events
}

/// The raw SHT4x words for a temperature (°C) and humidity (%RH), inverting the datasheet
/// conversion.
fn measurement(celsius: f64, rh: f64) -> Measurement {
    Measurement {
        raw_temperature: (((celsius + 45.0) / 175.0) * 65535.0).round() as u16,
        raw_humidity: (((rh + 6.0) / 125.0) * 65535.0).round() as u16,
    }
}

fn po(n: u32) -> BizTransaction {
    BizTransaction {
        kind: Some(BizTransactionType::Po),
        biz_transaction: Uri::parse(&format!("urn:epcglobal:cbv:bt:9506000134376:PO-{n}")).unwrap(),
    }
}

fn kgm() -> Option<Uom> {
    Some(Uom::parse("KGM").unwrap())
}

#[test]
fn commissioning_one_item_per_event() {
    let mut role = Commissioning::new(station(FACTORY));
    let mut ilmd = BTreeMap::new();
    ilmd.insert(
        "cbvmda:lotNumber".to_string(),
        IlmdValue::Text("PWD-2611".into()),
    );
    role.set_ilmd(Some(Ilmd(ilmd)));
    let mut drafts = Vec::new();
    // A serial with characters that must be percent-encoded in the URI.
    let odd = DigitalLink::Item {
        gtin: Gtin::parse("09506000134352").unwrap(),
        serial: Serial::parse("A/B%1").unwrap(),
    };
    drafts.push(role.on_scan(odd).unwrap());
    for serial in ["ABC123", "ABCx"] {
        drafts.push(role.on_scan(item(serial)).unwrap());
    }
    // A double read of the last item, a lot and a case are refused.
    assert!(matches!(
        role.on_scan(item("ABCx")),
        Err(RoleError::Repeated { .. })
    ));
    assert!(matches!(
        role.on_scan(lot("09506000134352", "L1")),
        Err(RoleError::WrongKind {
            got: IdKind::Lot,
            ..
        })
    ));
    assert!(matches!(
        role.on_scan(sscc(1)),
        Err(RoleError::WrongKind { .. })
    ));
    let events = sign_all("line1-commission", drafts);
    assert_eq!(events.len(), 3);
    for e in &events {
        let e = e.event();
        assert_eq!(e.event_type, EventType::Object);
        assert_eq!(e.action, Some(Action::Add));
        assert_eq!(e.biz_step, Some(BizStep::Commissioning));
        assert_eq!(e.disposition, Some(Disposition::Active));
        assert_eq!(e.epc_list.len(), 1);
        assert_eq!(
            e.read_point.as_ref().unwrap().id.canonical(),
            format!("https://id.gs1.org/414/{FACTORY}")
        );
        assert!(e.ilmd.is_some());
        assert_eq!(e.event_time_zone_offset.as_str(), "+01:00");
    }
}

#[test]
fn packing_one_child_per_event_into_the_open_case() {
    let mut role = Packing::new(station(FACTORY), Some(3));
    assert_eq!(
        role.on_scan(item("A1")),
        Err(RoleError::NoContainer {
            role: "packing",
            want: "a case label (SSCC)"
        })
    );
    assert_eq!(role.on_scan(sscc(10)).unwrap(), None);
    let mut drafts = Vec::new();
    drafts.push(role.on_scan(item("A1")).unwrap().unwrap());
    assert!(matches!(
        role.on_scan(item("A1")),
        Err(RoleError::Repeated { .. })
    ));
    drafts.push(role.on_scan(item("A2")).unwrap().unwrap());
    assert_eq!(role.packed(), 2);
    drafts.push(role.on_scan(item("A3")).unwrap().unwrap());
    // Capacity reached: the case closed itself.
    assert_eq!(role.open_case(), None);
    assert!(matches!(
        role.on_scan(item("A4")),
        Err(RoleError::NoContainer { .. })
    ));
    // The next case label opens the next case; a new label replaces an open case.
    assert_eq!(role.on_scan(sscc(11)).unwrap(), None);
    drafts.push(role.on_scan(item("A4")).unwrap().unwrap());
    assert_eq!(role.on_scan(sscc(12)).unwrap(), None);
    drafts.push(role.on_scan(item("A5")).unwrap().unwrap());
    assert_eq!(role.close_case(), Some(sscc(12)));
    assert!(matches!(
        role.on_scan(lot("09506000134352", "L1")),
        Err(RoleError::WrongKind { .. })
    ));

    let events = sign_all("line1-packer", drafts);
    let parents: Vec<_> = events
        .iter()
        .map(|e| e.event().parent_id.clone().unwrap())
        .collect();
    assert_eq!(
        parents,
        vec![sscc(10), sscc(10), sscc(10), sscc(11), sscc(12)]
    );
    for e in &events {
        let e = e.event();
        assert_eq!(e.event_type, EventType::Aggregation);
        assert_eq!(e.action, Some(Action::Add));
        assert_eq!(e.biz_step, Some(BizStep::Packing));
        // SPEC §2 disclosure rule.
        assert_eq!(e.child_epcs.len(), 1);
        assert_eq!(e.child_epcs[0].kind(), IdKind::Item);
    }
}

#[test]
fn palletizing_groups_cases_until_trigger_or_capacity() {
    let mut role = Palletizing::new(station(FACTORY), 4);
    assert_eq!(role.on_trigger(), None);
    assert!(matches!(
        role.on_scan(item("A1")),
        Err(RoleError::WrongKind { .. })
    ));
    assert_eq!(role.on_scan(sscc(100)).unwrap(), None); // the pallet
    for case in 1..=3 {
        assert_eq!(role.on_scan(sscc(case)).unwrap(), None);
    }
    assert!(matches!(
        role.on_scan(sscc(2)),
        Err(RoleError::Repeated { .. })
    ));
    assert!(matches!(
        role.on_scan(sscc(100)),
        Err(RoleError::Repeated { .. })
    ));
    let (pallet, cases) = role.open_pallet().unwrap();
    assert_eq!((pallet, cases.len()), (&sscc(100), 3));
    let first = role.on_trigger().unwrap();
    assert_eq!(role.open_pallet(), None);
    // Second pallet fills up and closes itself at 4 cases.
    role.on_scan(sscc(200)).unwrap();
    let mut second = None;
    for case in 4..=7 {
        second = role.on_scan(sscc(case)).unwrap();
    }
    let second = second.unwrap();
    // A pallet with no case yields nothing.
    role.on_scan(sscc(300)).unwrap();
    assert_eq!(role.on_trigger(), None);

    let events = sign_all("line1-palletizer", vec![first, second]);
    assert_eq!(events[0].event().parent_id, Some(sscc(100)));
    assert_eq!(
        events[0].event().child_epcs,
        vec![sscc(1), sscc(2), sscc(3)]
    );
    assert_eq!(events[1].event().parent_id, Some(sscc(200)));
    assert_eq!(events[1].event().child_epcs.len(), 4);
}

#[test]
fn a_full_pallet_event_stays_within_limits() {
    let mut role = Palletizing::new(station(FACTORY), 0);
    role.on_scan(sscc(999_999)).unwrap();
    let mut out = None;
    for case in 0..MAX_CASES_PER_PALLET as u32 {
        out = role.on_scan(sscc(case)).unwrap();
    }
    let events = sign_all("line1-palletizer", vec![out.unwrap()]);
    assert_eq!(events[0].event().child_epcs.len(), MAX_CASES_PER_PALLET);
    assert!(events[0].message().len() < 8 * 1024);
}

#[test]
fn shipping_observes_and_ties_to_the_order() {
    let mut dock = station(DOCK);
    dock.biz_location = None;
    let owner = Uri::parse(&format!("https://id.gs1.org/414/{FACTORY}")).unwrap();
    let customer = Uri::parse("https://id.gs1.org/414/9506000134406").unwrap();
    let mut role = Shipping::new(
        dock,
        vec![Source {
            kind: SourceDestType::OwningParty,
            source: owner,
        }],
        vec![Destination {
            kind: SourceDestType::OwningParty,
            destination: customer,
        }],
    );
    assert_eq!(role.on_scan(sscc(100)), Err(RoleError::NoOrder));
    role.set_order(po(4711));
    let [observe, transaction] = role.on_scan(sscc(100)).unwrap();
    assert!(matches!(
        role.on_scan(sscc(100)),
        Err(RoleError::Repeated { .. })
    ));
    assert!(matches!(
        role.on_scan(lot("09506000134352", "L1")),
        Err(RoleError::WrongKind { .. })
    ));
    role.set_order(po(4712));
    let [observe2, transaction2] = role.on_scan(sscc(200)).unwrap();

    let events = sign_all(
        "dock-shipper",
        vec![observe, transaction, observe2, transaction2],
    );
    let o = events[0].event();
    assert_eq!(o.event_type, EventType::Object);
    assert_eq!(o.action, Some(Action::Observe));
    assert_eq!(o.biz_step, Some(BizStep::Shipping));
    assert_eq!(o.disposition, Some(Disposition::InTransit));
    assert_eq!(o.biz_transaction_list, vec![po(4711)]);
    assert_eq!(o.source_list.len(), 1);
    assert_eq!(o.destination_list.len(), 1);
    assert_eq!(o.biz_location, None);
    let t = events[1].event();
    assert_eq!(t.event_type, EventType::Transaction);
    assert_eq!(t.action, Some(Action::Add));
    assert_eq!(t.epc_list, vec![sscc(100)]);
    assert_eq!(t.biz_transaction_list, vec![po(4711)]);
    assert_eq!(events[3].event().biz_transaction_list, vec![po(4712)]);
}

#[test]
fn cold_chain_readings_flag_excursions() {
    let mut config = ColdChainConfig::chilled();
    config.sensor_id = Some(Uri::parse("urn:dev:ops:0-sht41-0a1b2c3d").unwrap());
    let mut role = ColdChain::new(station(COLD_ROOM), config);
    // Nothing in the room: nothing to report.
    assert_eq!(role.on_reading(&measurement(4.0, 40.0)), None);
    assert_eq!(role.on_fault(), None);
    assert_eq!(role.on_scan(sscc(100)).unwrap(), Presence::Entered);
    assert_eq!(role.on_scan(sscc(200)).unwrap(), Presence::Entered);
    assert!(matches!(
        role.on_scan(lot("09506000134352", "L1")),
        Err(RoleError::WrongKind { .. })
    ));
    let normal = role.on_reading(&measurement(4.25, 41.25)).unwrap();
    let hot = role.on_reading(&measurement(9.5, 60.0)).unwrap();
    let at_limit = role.on_reading(&measurement(8.0, 50.0)).unwrap();
    let frozen = role.on_reading(&measurement(-2.0, 30.0)).unwrap();
    let fault = role.on_fault().unwrap();
    assert_eq!(role.on_scan(sscc(100)).unwrap(), Presence::Left);
    let after = role.on_reading(&measurement(4.0, 40.0)).unwrap();
    assert_eq!(role.units(), &[sscc(200)]);

    let events = sign_all(
        "coldroom-sensor",
        vec![normal, hot, at_limit, frozen, fault, after],
    );
    let reports = |i: usize| {
        events[i].event().sensor_element_list[0]
            .sensor_report
            .clone()
    };
    for e in &events {
        let e = e.event();
        assert_eq!(e.event_type, EventType::Object);
        assert_eq!(e.action, Some(Action::Observe));
        assert_eq!(e.biz_step, Some(BizStep::SensorReporting));
        let metadata = e.sensor_element_list[0].sensor_metadata.as_ref().unwrap();
        assert_eq!(
            metadata.device_id.as_ref().unwrap().as_str(),
            "urn:dev:ops:0-sht41-0a1b2c3d"
        );
    }
    let normal = reports(0);
    assert_eq!(normal[0].measurement_type, MeasurementType::Temperature);
    assert_eq!(normal[0].value, Some(4.25));
    assert_eq!(normal[0].uom.unwrap().as_str(), "CEL");
    assert_eq!(normal[0].exception, None);
    assert_eq!(
        normal[1].measurement_type,
        MeasurementType::RelativeHumidity
    );
    assert_eq!(normal[1].value, Some(41.25));
    assert_eq!(normal[1].uom.unwrap().as_str(), "A93");
    assert!(!events[0].event().has_sensor_exception());
    assert_eq!(reports(1)[0].value, Some(9.5));
    assert_eq!(reports(1)[0].exception, Some(SensorAlert::AlarmCondition));
    assert_eq!(reports(1)[1].exception, None);
    assert_eq!(reports(2)[0].exception, None, "8.00 is not above 8.00");
    assert_eq!(reports(3)[0].exception, Some(SensorAlert::AlarmCondition));
    assert_eq!(reports(4)[0].exception, Some(SensorAlert::ErrorCondition));
    assert_eq!(reports(4)[0].value, None);
    assert_eq!(events[0].event().epc_list, vec![sscc(100), sscc(200)]);
    assert_eq!(events[5].event().epc_list, vec![sscc(200)]);
}

#[test]
fn transformation_milk_lots_to_powder_lot() {
    let mut role = Transformation::new(station(FACTORY));
    let milk1 = lot("09506000134369", "MILK-0412");
    let milk2 = lot("09506000134369", "MILK-0413");
    let powder = lot("09506000134352", "PWD-2611");
    assert_eq!(
        role.finish(powder.clone(), 2100.25, kgm(), None),
        Err(RoleError::NoInputs)
    );
    role.add_input(milk1.clone(), 1000.5, kgm()).unwrap();
    role.add_input(milk2.clone(), 1200.0, kgm()).unwrap();
    role.add_input(milk1.clone(), 500.0, kgm()).unwrap(); // a second tank of the same lot
    assert!(matches!(
        role.add_input(item("A1"), 1.0, None),
        Err(RoleError::WrongKind { .. })
    ));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            role.add_input(milk2.clone(), bad, kgm()),
            Err(RoleError::Quantity { .. })
        ));
    }
    assert!(matches!(
        role.add_input(lot("09506000134369", "CANS"), 2.5, None),
        Err(RoleError::Quantity { .. })
    ));
    assert!(matches!(
        role.add_input(milk1.clone(), 3.0, None),
        Err(RoleError::Repeated { .. })
    ));
    assert_eq!(role.inputs().len(), 2);
    let mut ilmd = BTreeMap::new();
    ilmd.insert(
        "cbvmda:bestBeforeDate".to_string(),
        IlmdValue::Text("2028-11-24".into()),
    );
    let draft = role
        .finish(powder.clone(), 2100.25, kgm(), Some(Ilmd(ilmd)))
        .unwrap();
    assert!(role.inputs().is_empty());

    let events = sign_all("dryer-transform", vec![draft]);
    let e = events[0].event();
    assert_eq!(e.event_type, EventType::Transformation);
    assert_eq!(e.action, None);
    assert_eq!(e.input_quantity_list.len(), 2);
    assert_eq!(e.input_quantity_list[0].epc_class, milk1);
    assert_eq!(e.input_quantity_list[0].quantity, 1500.5);
    assert_eq!(e.output_quantity_list[0].epc_class, powder);
    assert_eq!(e.output_quantity_list[0].quantity, 2100.25);
    assert!(e.ilmd.is_some());
    assert_eq!(e.transformation_edges().len(), 2);
}

#[test]
fn a_whole_line_signed_by_one_device_each_verifies_and_validates() {
    // A miniature run: 2 cases of 2 items on one pallet, cold room, shipped.
    let mut commission = Commissioning::new(station(FACTORY));
    let mut pack = Packing::new(station(FACTORY), Some(2));
    let mut pallet = Palletizing::new(station(FACTORY), 10);
    let mut cold = ColdChain::new(station(COLD_ROOM), ColdChainConfig::chilled());
    let mut ship = Shipping::new(station(DOCK), Vec::new(), Vec::new());
    ship.set_order(po(1));
    let mut all: BTreeMap<&str, Vec<Draft>> = BTreeMap::new();
    pallet.on_scan(sscc(900)).unwrap();
    for case in 0..2u32 {
        pack.on_scan(sscc(case)).unwrap();
        for n in 0..2 {
            let id = item(&format!("C{case}N{n}"));
            all.entry("commission")
                .or_default()
                .push(commission.on_scan(id.clone()).unwrap());
            all.entry("packer")
                .or_default()
                .push(pack.on_scan(id).unwrap().unwrap());
        }
        pallet.on_scan(sscc(case)).unwrap();
    }
    all.entry("palletizer")
        .or_default()
        .push(pallet.on_trigger().unwrap());
    cold.on_scan(sscc(900)).unwrap();
    all.entry("cold")
        .or_default()
        .push(cold.on_reading(&measurement(3.0, 45.0)).unwrap());
    cold.on_scan(sscc(900)).unwrap();
    all.entry("shipper")
        .or_default()
        .extend(ship.on_scan(sscc(900)).unwrap());
    let mut every = Vec::new();
    for (name, drafts) in all {
        every.extend(sign_all(name, drafts));
    }
    assert_eq!(every.len(), 4 + 4 + 1 + 1 + 2);
    // The disclosure rule across the whole run.
    for e in &every {
        let e = e.event();
        if e.child_epcs.iter().any(|c| c.kind() == IdKind::Item) {
            assert_eq!(e.child_epcs.len(), 1);
        }
    }
}
