//! How each event of a bundle relates to the product (SPEC §6: "every event naming the product
//! and its ancestors' own events").
//!
//! The ancestors are derived from the bundle's own signed events (a `verified` verdict needs
//! every one of them verified), never from unsigned fields:
//! - containers: the parent of an AggregationEvent (ADD or OBSERVE) whose child is the product
//!   or one of its containers, transitively (item → case → pallet);
//! - lots: the lot the product's own events declare (`ilmd` `cbvmda:lotNumber`, the EPCIS way
//!   to state an instance's lot); if none does, every lot of the product's GTIN that the bundle
//!   names, with a warning that the link rests on the GTIN alone;
//! - inputs: the inputs of a TransformationEvent whose output is the product or an ancestor,
//!   transitively (powder lot → milk lots).

use alloc::vec::Vec;

use prov_schemas::digital_link::{DigitalLink, IdKind};
use prov_schemas::event::{Action, Event, EventType};

/// How an identifier is linked to the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The product itself.
    Product,
    /// A case or pallet it was aggregated into.
    Container,
    /// Its lot.
    Lot,
    /// An input its lot (or another ancestor) was made from.
    Input,
}

impl Link {
    /// The relation's name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Product => "product",
            Link::Container => "container",
            Link::Lot => "lot",
            Link::Input => "input",
        }
    }
}

/// The product and its ancestors, each with how it is linked.
pub struct Lineage {
    /// A list, not a map: a bundle names a handful of identifiers, and a map type would cost
    /// the wasm module more code than it saves time.
    known: Vec<(DigitalLink, Link)>,
    /// Lots linked by the product's GTIN only (no signed event states its lot).
    pub lots_by_gtin_only: Vec<DigitalLink>,
}

impl Lineage {
    /// Derives the ancestors of `product` from `events` (the bundle's decoded events).
    pub fn derive(product: &DigitalLink, events: &[&Event]) -> Lineage {
        let mut known = Known(Vec::new());
        known.insert(product.clone(), Link::Product);
        let mut lots_by_gtin_only = Vec::new();
        if let DigitalLink::Item { gtin, .. } = product {
            let declared: Vec<DigitalLink> = events
                .iter()
                .flat_map(|e| e.declared_lots())
                .filter(|(item, _)| *item == product)
                .map(|(_, lot)| lot)
                .collect();
            if declared.is_empty() {
                for e in events {
                    for id in e.identifiers() {
                        let same_gtin = id.kind() == IdKind::Lot && id.gtin() == Some(gtin);
                        if same_gtin && !known.contains(id) {
                            known.insert(id.clone(), Link::Lot);
                            lots_by_gtin_only.push(id.clone());
                        }
                    }
                }
            } else {
                for lot in declared {
                    known.insert(lot, Link::Lot);
                }
            }
        }
        // Each pass adds at least one new identifier or ends, so this terminates.
        loop {
            let mut added = Vec::new();
            for e in events {
                for edge in e.containment_edges() {
                    if edge.action != Action::Delete
                        && known.contains(edge.child)
                        && !known.contains(edge.parent)
                    {
                        added.push((edge.parent.clone(), Link::Container));
                    }
                }
                for (input, output) in e.transformation_edges() {
                    if known.contains(output) && !known.contains(input) {
                        added.push((input.clone(), Link::Input));
                    }
                }
            }
            if added.is_empty() {
                break;
            }
            for (id, link) in added {
                known.insert(id, link);
            }
        }
        Lineage {
            known: known.0,
            lots_by_gtin_only,
        }
    }

    fn link(&self, id: &DigitalLink) -> Option<Link> {
        self.known.iter().find(|(k, _)| k == id).map(|(_, l)| *l)
    }

    /// How `event` relates to the product: the product itself if it names it, else the first
    /// ancestor it names; `None` if it names neither.
    pub fn relation<'e>(&self, event: &'e Event) -> Option<(Link, &'e DigitalLink)> {
        let ids = event.identifiers();
        if let Some(p) = ids.iter().find(|id| self.link(id) == Some(Link::Product)) {
            return Some((Link::Product, p));
        }
        ids.into_iter()
            .find_map(|id| self.link(id).map(|link| (link, id)))
    }

    /// The serialized items other than the product that an AggregationEvent lists as children:
    /// what the disclosure rule (SPEC §2) keeps out of other products' bundles.
    pub fn other_items<'e>(&self, event: &'e Event) -> Vec<&'e DigitalLink> {
        if event.event_type != EventType::Aggregation {
            return Vec::new();
        }
        event
            .child_epcs
            .iter()
            .filter(|c| c.kind() == IdKind::Item && self.link(c) != Some(Link::Product))
            .collect()
    }
}

/// The identifiers linked so far; the first link found for one is kept.
struct Known(Vec<(DigitalLink, Link)>);

impl Known {
    fn contains(&self, id: &DigitalLink) -> bool {
        self.0.iter().any(|(k, _)| k == id)
    }

    fn insert(&mut self, id: DigitalLink, link: Link) {
        if !self.contains(&id) {
            self.0.push((id, link));
        }
    }
}
