//! Lineage for auditors: where a product came from (trace back) and where a lot went (trace
//! forward), over the edges the signed events state.
//!
//! The edges (EPCIS 2.0 semantics):
//! - **containment**: an AggregationEvent `ADD` puts a child into a parent; a later `DELETE`
//!   takes it out. A child is in a parent only between the two (an `OBSERVE` is evidence it
//!   was in at that instant). So a case that was unpacked and repacked is two intervals, and a
//!   trace honours them: an item is linked to the pallet its case was on only while the item
//!   was in the case *and* the case on the pallet (the intervals intersect).
//! - **transformation**: a TransformationEvent's inputs made its outputs (milk lots → powder
//!   lot).
//! - **lot membership**: an item's own events declare its production lot in `ilmd`
//!   (`cbvmda:lotNumber`), the EPCIS way to state an instance's class-level lot.
//!
//! Trace back from X follows containers (X's parents, during X's window), X's lots, and the
//! inputs X was made from; trace forward from X follows what X was made into, the items of
//! lot X, and the containers those went into. Both stop at a depth bound, count only edges
//! whose event time lies in the time bound, and return the graph (nodes, edges with the
//! leaves that state them) plus, per node, the leaves of the events about it during its
//! window: what an auditor checks against the log.
//!
//! The traversal is generic over a [`LineageSource`], so that the one algorithm serves the
//! gateway's indexes and the offline auditor's archive alike.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use prov_schemas::digital_link::{DigitalLink, IdKind};
use prov_schemas::event::Action;

pub use crate::index::LotEdge;
use crate::index::{ContainmentEdge, IndexError, Indexes, TransformEdge};

/// A time window `[from, to)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    /// Inclusive start.
    pub from: u64,
    /// Exclusive end.
    pub to: u64,
}

impl Window {
    /// All of time.
    pub const ALL: Window = Window {
        from: 0,
        to: u64::MAX,
    };

    /// The overlap of two windows, if any.
    pub fn intersect(self, other: Window) -> Option<Window> {
        let w = Window {
            from: self.from.max(other.from),
            to: self.to.min(other.to),
        };
        (w.from < w.to).then_some(w)
    }

    /// Whether `t` lies in the window.
    pub fn contains(self, t: u64) -> bool {
        self.from <= t && t < self.to
    }
}

/// Bounds of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Hops from the start (1 = direct containers / lots / inputs only).
    pub max_depth: u32,
    /// Only edges whose event time lies in this window count; the start node's window.
    pub window: Window,
    /// At most this many nodes (a guard against a runaway query; the answer says it was hit).
    pub max_nodes: usize,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            max_depth: 8,
            window: Window::ALL,
            max_nodes: 10_000,
        }
    }
}

/// What the traversal reads. The gateway implements it over its indexes and log; errors are
/// the source's own.
pub trait LineageSource {
    /// The source's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Containment edges where `child` is the child.
    fn parents(&self, child: &DigitalLink) -> Result<Vec<ContainmentEdge>, Self::Error>;
    /// Transformations that made `output`, with their event time.
    fn inputs_of(&self, output: &DigitalLink) -> Result<Vec<(TransformEdge, u64)>, Self::Error>;
    /// Transformations that consumed `input`, with their event time.
    fn outputs_of(&self, input: &DigitalLink) -> Result<Vec<(TransformEdge, u64)>, Self::Error>;
    /// The lots an item's events declare.
    fn lots_of(&self, item: &DigitalLink) -> Result<Vec<LotEdge>, Self::Error>;
    /// The items whose events declare `lot`.
    fn items_of(&self, lot: &DigitalLink) -> Result<Vec<LotEdge>, Self::Error>;
    /// The leaves of the events naming `id`, with their event times, in log order.
    fn events_of(&self, id: &DigitalLink) -> Result<Vec<(u64, u64)>, Self::Error>;
}

/// The gateway's source: its sled indexes (every edge and time is in them; no log read).
impl LineageSource for Indexes {
    type Error = IndexError;

    fn parents(&self, child: &DigitalLink) -> Result<Vec<ContainmentEdge>, IndexError> {
        Indexes::parents(self, child)
    }

    fn inputs_of(&self, output: &DigitalLink) -> Result<Vec<(TransformEdge, u64)>, IndexError> {
        self.timed(Indexes::inputs_of(self, output)?)
    }

    fn outputs_of(&self, input: &DigitalLink) -> Result<Vec<(TransformEdge, u64)>, IndexError> {
        self.timed(Indexes::outputs_of(self, input)?)
    }

    fn lots_of(&self, item: &DigitalLink) -> Result<Vec<LotEdge>, IndexError> {
        self.item_lots(item)
    }

    fn items_of(&self, lot: &DigitalLink) -> Result<Vec<LotEdge>, IndexError> {
        self.lot_items(lot)
    }

    fn events_of(&self, id: &DigitalLink) -> Result<Vec<(u64, u64)>, IndexError> {
        self.product_leaves(id)?
            .into_iter()
            .map(|leaf| Ok((leaf, self.event_time(leaf)?)))
            .collect()
    }
}

impl Indexes {
    fn event_time(&self, leaf: u64) -> Result<u64, IndexError> {
        Ok(self.leaf_info(leaf)?.map_or(0, |i| i.event_time_ms))
    }

    fn timed(&self, edges: Vec<TransformEdge>) -> Result<Vec<(TransformEdge, u64)>, IndexError> {
        edges
            .into_iter()
            .map(|e| {
                let t = self.event_time(e.leaf)?;
                Ok((e, t))
            })
            .collect()
    }
}

/// How two nodes are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeKind {
    /// `from` was inside `to` (an aggregation).
    ContainedIn,
    /// `from` was made from `to` (a transformation input).
    MadeFrom,
    /// `from` was made into `to` (a transformation output).
    MadeInto,
    /// `from` (an item) belongs to lot `to`.
    InLot,
    /// `from` (a lot) has the item `to`.
    HasItem,
}

impl EdgeKind {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::ContainedIn => "contained_in",
            EdgeKind::MadeFrom => "made_from",
            EdgeKind::MadeInto => "made_into",
            EdgeKind::InLot => "in_lot",
            EdgeKind::HasItem => "has_item",
        }
    }
}

/// One edge of the answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// Canonical URI of the nearer node.
    pub from: String,
    /// Canonical URI of the farther node.
    pub to: String,
    /// The relation.
    pub kind: EdgeKind,
    /// When it held (containment: from ADD to DELETE, cut to the trace's window).
    pub window: Window,
    /// The leaves of the events that state it (ADD and DELETE, or the transformation).
    pub leaves: Vec<u64>,
}

/// One node of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its canonical URI.
    pub id: String,
    /// Item, lot, logistic unit…
    pub kind: IdKind,
    /// Hops from the start.
    pub depth: u32,
    /// The windows during which it is linked to the start.
    pub windows: Vec<Window>,
    /// The leaves of the events about it during those windows.
    pub leaves: Vec<u64>,
}

/// Which way to trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards containers, lots and inputs.
    Back,
    /// Towards outputs, the items of a lot, and their containers.
    Forward,
}

/// A trace's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// The start.
    pub root: String,
    /// The direction.
    pub direction: Direction,
    /// Every node reached, the start first, then in order of discovery.
    pub nodes: Vec<Node>,
    /// Every edge followed.
    pub edges: Vec<Edge>,
    /// Whether `max_nodes` cut the trace short.
    pub truncated: bool,
}

impl Graph {
    /// Every leaf the answer rests on (node events and edge events), sorted.
    pub fn leaves(&self) -> BTreeSet<u64> {
        self.nodes
            .iter()
            .flat_map(|n| n.leaves.iter().copied())
            .chain(self.edges.iter().flat_map(|e| e.leaves.iter().copied()))
            .collect()
    }

    /// The nodes of one kind (e.g. every item a lot went into).
    pub fn nodes_of_kind(&self, kind: IdKind) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.kind == kind)
    }
}

/// Containment intervals of one child in its parents: `(parent, window, leaves)`. An ADD opens
/// an interval (a second ADD while open is a re-observation), a DELETE closes it, an OBSERVE
/// without an open interval is a point of presence; an interval never closed runs to the end
/// of time.
pub fn containment_intervals(edges: &[ContainmentEdge]) -> Vec<(DigitalLink, Window, Vec<u64>)> {
    let mut by_parent: BTreeMap<String, (DigitalLink, Vec<&ContainmentEdge>)> = BTreeMap::new();
    for e in edges {
        by_parent
            .entry(e.other.canonical())
            .or_insert_with(|| (e.other.clone(), Vec::new()))
            .1
            .push(e);
    }
    let mut out = Vec::new();
    for (_, (parent, mut list)) in by_parent {
        list.sort_by_key(|e| (e.event_time_ms, e.leaf));
        let mut open: Option<(u64, Vec<u64>)> = None;
        for e in list {
            match (e.action, open.take()) {
                (Action::Add, None) => open = Some((e.event_time_ms, vec![e.leaf])),
                (Action::Add | Action::Observe, Some((t, mut leaves))) => {
                    leaves.push(e.leaf);
                    open = Some((t, leaves));
                }
                (Action::Observe, None) => out.push((
                    parent.clone(),
                    Window {
                        from: e.event_time_ms,
                        to: e.event_time_ms.saturating_add(1),
                    },
                    vec![e.leaf],
                )),
                (Action::Delete, Some((t, mut leaves))) => {
                    leaves.push(e.leaf);
                    out.push((
                        parent.clone(),
                        Window {
                            from: t,
                            to: e.event_time_ms.max(t.saturating_add(1)),
                        },
                        leaves,
                    ));
                }
                // A DELETE with nothing open states nothing about presence.
                (Action::Delete, None) => {}
            }
        }
        if let Some((t, leaves)) = open {
            out.push((
                parent,
                Window {
                    from: t,
                    to: u64::MAX,
                },
                leaves,
            ));
        }
    }
    out
}

struct Tracer<'s, S> {
    source: &'s S,
    bounds: Bounds,
    nodes: Vec<Node>,
    index: BTreeMap<String, usize>,
    edges: BTreeSet<Edge>,
    queue: VecDeque<(DigitalLink, u32, Window)>,
    truncated: bool,
}

impl<S: LineageSource> Tracer<'_, S> {
    /// Records that `id` is reached at `depth` during `window`; queues it if that adds time.
    fn reach(&mut self, id: &DigitalLink, depth: u32, window: Window) {
        let key = id.canonical();
        match self.index.get(&key) {
            Some(&i) => {
                let node = &mut self.nodes[i];
                let covered = node
                    .windows
                    .iter()
                    .any(|w| w.from <= window.from && window.to <= w.to);
                if covered {
                    return;
                }
                node.windows.push(window);
                node.depth = node.depth.min(depth);
            }
            None => {
                if self.nodes.len() >= self.bounds.max_nodes {
                    self.truncated = true;
                    return;
                }
                self.index.insert(key.clone(), self.nodes.len());
                self.nodes.push(Node {
                    id: key,
                    kind: id.kind(),
                    depth,
                    windows: vec![window],
                    leaves: Vec::new(),
                });
            }
        }
        self.queue.push_back((id.clone(), depth, window));
    }

    fn edge(
        &mut self,
        from: &DigitalLink,
        to: &DigitalLink,
        kind: EdgeKind,
        w: Window,
        leaves: Vec<u64>,
    ) {
        self.edges.insert(Edge {
            from: from.canonical(),
            to: to.canonical(),
            kind,
            window: w,
            leaves,
        });
    }

    fn run(&mut self, direction: Direction) -> Result<(), S::Error> {
        while let Some((id, depth, window)) = self.queue.pop_front() {
            if depth >= self.bounds.max_depth {
                continue;
            }
            let next = depth + 1;
            // Containers, both ways: where the thing (or what it became) went, and what held it.
            for (parent, held, leaves) in containment_intervals(&self.source.parents(&id)?) {
                if let Some(w) = held.intersect(window) {
                    self.edge(&id, &parent, EdgeKind::ContainedIn, w, leaves);
                    self.reach(&parent, next, w);
                }
            }
            match direction {
                Direction::Back => {
                    if id.kind() == IdKind::Item {
                        for lot in self.source.lots_of(&id)? {
                            // Membership is permanent once declared: it counts if declared
                            // before the end of the trace's window.
                            if lot.event_time_ms < self.bounds.window.to {
                                self.edge(&id, &lot.other, EdgeKind::InLot, window, vec![lot.leaf]);
                                self.reach(&lot.other, next, self.bounds.window);
                            }
                        }
                    }
                    for (t, time) in self.source.inputs_of(&id)? {
                        if time < self.bounds.window.to {
                            self.edge(&id, &t.other, EdgeKind::MadeFrom, window, vec![t.leaf]);
                            self.reach(&t.other, next, self.bounds.window);
                        }
                    }
                }
                Direction::Forward => {
                    for (t, time) in self.source.outputs_of(&id)? {
                        if window.contains(time) {
                            self.edge(&id, &t.other, EdgeKind::MadeInto, window, vec![t.leaf]);
                            self.reach(&t.other, next, self.bounds.window);
                        }
                    }
                    if id.kind() == IdKind::Lot {
                        for item in self.source.items_of(&id)? {
                            if window.contains(item.event_time_ms) {
                                self.edge(
                                    &id,
                                    &item.other,
                                    EdgeKind::HasItem,
                                    window,
                                    vec![item.leaf],
                                );
                                self.reach(&item.other, next, self.bounds.window);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Fills every node's event leaves: the events naming it during its windows.
    fn collect_events(&mut self) -> Result<(), S::Error> {
        for node in &mut self.nodes {
            let Ok(id) = DigitalLink::parse_canonical(&node.id) else {
                continue;
            };
            node.leaves = self
                .source
                .events_of(&id)?
                .into_iter()
                .filter(|(_, t)| node.windows.iter().any(|w| w.contains(*t)))
                .map(|(leaf, _)| leaf)
                .collect();
        }
        Ok(())
    }
}

/// Traces from `start` in `direction` within `bounds`.
///
/// # Errors
/// The source's errors.
pub fn trace<S: LineageSource>(
    source: &S,
    start: &DigitalLink,
    direction: Direction,
    bounds: Bounds,
) -> Result<Graph, S::Error> {
    let mut t = Tracer {
        source,
        bounds,
        nodes: Vec::new(),
        index: BTreeMap::new(),
        edges: BTreeSet::new(),
        queue: VecDeque::new(),
        truncated: false,
    };
    t.reach(start, 0, bounds.window);
    t.run(direction)?;
    t.collect_events()?;
    Ok(Graph {
        root: start.canonical(),
        direction,
        nodes: t.nodes,
        edges: t.edges.into_iter().collect(),
        truncated: t.truncated,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    //! The traversal over a small history held in memory (the gateway's index-backed source is
    //! tested end to end in `tests/lineage.rs`): unpack and repack, pallets, lots, inputs.

    use super::*;

    const ITEM: &str = "https://id.gs1.org/01/09506000134352/21/I1";
    const CASE_1: &str = "https://id.gs1.org/00/106141412345678908";
    const CASE_2: &str = "https://id.gs1.org/00/106141412345678915";
    const PALLET_1: &str = "https://id.gs1.org/00/106141412345678922";
    const PALLET_2: &str = "https://id.gs1.org/00/106141412345678939";
    const LOT: &str = "https://id.gs1.org/01/09506000134352/10/L1";
    const MILK_1: &str = "https://id.gs1.org/01/09506000134369/10/M1";
    const MILK_2: &str = "https://id.gs1.org/01/09506000134369/10/M2";

    fn dl(s: &str) -> DigitalLink {
        DigitalLink::parse_canonical(s).unwrap()
    }

    #[derive(Default)]
    struct Mem {
        containment: Vec<(&'static str, &'static str, Action, u64, u64)>,
        transformation: Vec<(&'static str, &'static str, u64, u64)>,
        lots: Vec<(&'static str, &'static str, u64, u64)>,
    }

    impl LineageSource for Mem {
        type Error = std::convert::Infallible;
        fn parents(&self, child: &DigitalLink) -> Result<Vec<ContainmentEdge>, Self::Error> {
            Ok(self
                .containment
                .iter()
                .filter(|(c, ..)| dl(c) == *child)
                .map(|&(_, p, action, leaf, t)| ContainmentEdge {
                    other: dl(p),
                    action,
                    leaf,
                    event_time_ms: t,
                })
                .collect())
        }
        fn inputs_of(&self, out: &DigitalLink) -> Result<Vec<(TransformEdge, u64)>, Self::Error> {
            Ok(self
                .transformation
                .iter()
                .filter(|(_, o, ..)| dl(o) == *out)
                .map(|&(i, _, leaf, t)| (TransformEdge { other: dl(i), leaf }, t))
                .collect())
        }
        fn outputs_of(&self, inp: &DigitalLink) -> Result<Vec<(TransformEdge, u64)>, Self::Error> {
            Ok(self
                .transformation
                .iter()
                .filter(|(i, ..)| dl(i) == *inp)
                .map(|&(_, o, leaf, t)| (TransformEdge { other: dl(o), leaf }, t))
                .collect())
        }
        fn lots_of(&self, item: &DigitalLink) -> Result<Vec<LotEdge>, Self::Error> {
            Ok(self
                .lots
                .iter()
                .filter(|(i, ..)| dl(i) == *item)
                .map(|&(_, l, leaf, t)| LotEdge {
                    other: dl(l),
                    leaf,
                    event_time_ms: t,
                })
                .collect())
        }
        fn items_of(&self, lot: &DigitalLink) -> Result<Vec<LotEdge>, Self::Error> {
            Ok(self
                .lots
                .iter()
                .filter(|(_, l, ..)| dl(l) == *lot)
                .map(|&(i, _, leaf, t)| LotEdge {
                    other: dl(i),
                    leaf,
                    event_time_ms: t,
                })
                .collect())
        }
        fn events_of(&self, _id: &DigitalLink) -> Result<Vec<(u64, u64)>, Self::Error> {
            Ok(Vec::new())
        }
    }

    /// Milk lots → powder lot L1 → item I1, packed into case 1 during [10, 20), unpacked,
    /// repacked into case 2 from 30; case 1 on pallet 1 from 5; case 2 on pallet 2 during
    /// [25, 40).
    fn history() -> Mem {
        Mem {
            containment: vec![
                (ITEM, CASE_1, Action::Add, 10, 10),
                (ITEM, CASE_1, Action::Delete, 20, 20),
                (ITEM, CASE_2, Action::Add, 30, 30),
                (CASE_1, PALLET_1, Action::Add, 5, 5),
                (CASE_2, PALLET_2, Action::Add, 25, 25),
                (CASE_2, PALLET_2, Action::Delete, 40, 40),
            ],
            transformation: vec![(MILK_1, LOT, 2, 0), (MILK_2, LOT, 2, 0)],
            lots: vec![(ITEM, LOT, 3, 1)],
        }
    }

    fn ids(g: &Graph) -> BTreeSet<&str> {
        g.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    fn window(from: u64, to: u64) -> Bounds {
        Bounds {
            window: Window { from, to },
            ..Bounds::default()
        }
    }

    #[test]
    fn intervals_follow_add_and_delete() {
        let src = history();
        let iv = containment_intervals(&src.parents(&dl(ITEM)).unwrap());
        let got: Vec<(String, Window)> = iv.iter().map(|(p, w, _)| (p.canonical(), *w)).collect();
        assert_eq!(
            got,
            vec![
                (CASE_1.into(), Window { from: 10, to: 20 }),
                (
                    CASE_2.into(),
                    Window {
                        from: 30,
                        to: u64::MAX
                    }
                ),
            ]
        );
    }

    #[test]
    fn trace_back_honours_unpacking_and_repacking() {
        let src = history();
        let all = trace(&src, &dl(ITEM), Direction::Back, Bounds::default()).unwrap();
        let want: BTreeSet<&str> = [
            ITEM, CASE_1, CASE_2, PALLET_1, PALLET_2, LOT, MILK_1, MILK_2,
        ]
        .into();
        assert_eq!(ids(&all), want);
        let p1 = all.nodes.iter().find(|n| n.id == PALLET_1).unwrap();
        assert_eq!(p1.windows, vec![Window { from: 10, to: 20 }]);
        let p2 = all.nodes.iter().find(|n| n.id == PALLET_2).unwrap();
        assert_eq!(p2.windows, vec![Window { from: 30, to: 40 }]);

        // Between unpacking and repacking the item was in no case.
        let gap = trace(&src, &dl(ITEM), Direction::Back, window(21, 29)).unwrap();
        assert_eq!(ids(&gap), [ITEM, LOT, MILK_1, MILK_2].into());
        // While in case 1 only.
        let first = trace(&src, &dl(ITEM), Direction::Back, window(12, 15)).unwrap();
        assert_eq!(
            ids(&first),
            [ITEM, CASE_1, PALLET_1, LOT, MILK_1, MILK_2].into()
        );
        // After pallet 2 was unwrapped: case 2 but no pallet.
        let late = trace(&src, &dl(ITEM), Direction::Back, window(41, 50)).unwrap();
        assert_eq!(ids(&late), [ITEM, CASE_2, LOT, MILK_1, MILK_2].into());
        // Depth 1: direct links only.
        let near = Bounds {
            max_depth: 1,
            ..Bounds::default()
        };
        let one = trace(&src, &dl(ITEM), Direction::Back, near).unwrap();
        assert_eq!(ids(&one), [ITEM, CASE_1, CASE_2, LOT].into());
    }

    #[test]
    fn trace_forward_from_an_input_lot() {
        let src = history();
        let g = trace(&src, &dl(MILK_1), Direction::Forward, Bounds::default()).unwrap();
        assert_eq!(
            ids(&g),
            [MILK_1, LOT, ITEM, CASE_1, CASE_2, PALLET_1, PALLET_2].into()
        );
        assert!(!ids(&g).contains(MILK_2));
        assert_eq!(g.nodes_of_kind(IdKind::Item).count(), 1);
        let leaves = g.leaves();
        assert!([2, 3, 10, 20, 30].iter().all(|l| leaves.contains(l)));
        // A node cap says so.
        let capped = Bounds {
            max_nodes: 3,
            ..Bounds::default()
        };
        let g = trace(&src, &dl(MILK_1), Direction::Forward, capped).unwrap();
        assert!(g.truncated);
        assert_eq!(g.nodes.len(), 3);
    }
}
