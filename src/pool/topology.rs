//! Where the pool's workers run: a [`PoolPlan`] groups CPUs by NUMA node, from the hwloc
//! topology when the `hwloc` feature is built, else from `available_parallelism` as one node.
//!
//! The plan takes one processing unit per physical core first (hyper-threads share a core's
//! execution units, and an EVM worker keeps them busy), then, if more workers per node are
//! asked for than the node has cores, the cores' other processing units.

#[cfg(feature = "hwloc")]
use super::PoolError;

/// How to size and place the pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolOptions {
    /// Workers per NUMA node (`None`: one per physical core of the node).
    pub workers_per_node: Option<usize>,
    /// NUMA nodes to use, by OS index (`None`: all).
    pub nodes: Option<Vec<usize>>,
    /// Pin each worker to its CPU (default true when the plan knows CPUs).
    pub no_pinning: bool,
}

/// Where the plan came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanSource {
    /// The hwloc topology of this machine (or a synthetic one, in tests).
    Hwloc,
    /// No usable topology: one node of `available_parallelism` workers; the reason says why.
    Fallback(String),
}

/// The workers of one NUMA node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    /// The node's OS index.
    pub node: usize,
    /// One entry per worker: the OS index of the processing unit it is pinned to, or `None`
    /// for an unpinned worker.
    pub cpus: Vec<Option<usize>>,
}

/// The pool's layout: workers grouped by node, nodes in OS order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// The nodes, each with its workers.
    pub nodes: Vec<NodePlan>,
    /// Where the layout came from.
    pub source: PlanSource,
}

impl PoolPlan {
    /// Total workers.
    pub fn workers(&self) -> usize {
        self.nodes.iter().map(|node| node.cpus.len()).sum()
    }

    /// Every worker as `(node, cpu)`, node by node: a block that uses `k` workers takes the
    /// first `k`, so that small blocks stay on one node.
    pub fn placements(&self) -> Vec<(usize, Option<usize>)> {
        self.nodes
            .iter()
            .flat_map(|node| node.cpus.iter().map(move |cpu| (node.node, *cpu)))
            .collect()
    }

    /// The plan for this machine: hwloc's topology where built and usable, else the fallback.
    pub fn detect(options: &PoolOptions) -> Self {
        #[cfg(feature = "hwloc")]
        let plan = match hwlocality::Topology::new() {
            Ok(topology) => hwloc_plan::plan(&topology, options).unwrap_or_else(|reason| {
                fallback(options, format!("hwloc topology unusable: {reason}"))
            }),
            Err(error) => fallback(
                options,
                format!("hwloc failed to load the topology: {error}"),
            ),
        };
        #[cfg(not(feature = "hwloc"))]
        let plan = fallback(
            options,
            "built without the `hwloc` feature: no NUMA topology".to_owned(),
        );
        let backend = env!("BLOCKSTM_POOL_BACKEND");
        match &plan.source {
            PlanSource::Hwloc => tracing::info!(
                backend,
                nodes = plan.nodes.len(),
                workers = plan.workers(),
                "worker pool placed by the hwloc topology"
            ),
            PlanSource::Fallback(reason) => tracing::info!(
                backend,
                workers = plan.workers(),
                %reason,
                "worker pool falls back to one node of available_parallelism threads"
            ),
        }
        plan
    }

    /// The plan for the hwloc synthetic topology `description` (e.g.
    /// `"pack:2 numa:2 core:8 pu:2"`): how the pool would be laid out on such a machine.
    #[cfg(feature = "hwloc")]
    pub fn for_synthetic(description: &str, options: &PoolOptions) -> Result<Self, PoolError> {
        let topology = hwlocality::Topology::builder()
            .from_synthetic(description)
            .map_err(|e| PoolError::Topology(format!("synthetic `{description}`: {e}")))?
            .build()
            .map_err(|e| PoolError::Topology(format!("synthetic `{description}`: {e}")))?;
        hwloc_plan::plan(&topology, options).map_err(PoolError::Topology)
    }
}

/// One node of `available_parallelism` (or `workers_per_node`) workers, pinned in order to
/// the CPUs this process may run on when each worker gets a CPU of its own, else unpinned.
pub(crate) fn fallback(options: &PoolOptions, reason: String) -> PoolPlan {
    let cpus = core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|id| id.id).collect());
    fallback_on(options, cpus, reason)
}

/// [`fallback`] over `cpus`, the process's CPUs (`None`: unknown). Pinning matters even
/// without a topology: woken unpinned workers tend to queue on their waker's CPU until the
/// kernel balances them (measured in BENCHMARKS.md, pool section).
fn fallback_on(options: &PoolOptions, cpus: Option<Vec<usize>>, reason: String) -> PoolPlan {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = options.workers_per_node.unwrap_or(cores).max(1);
    let pinned_to = cpus.filter(|cpus| !options.no_pinning && workers <= cpus.len());
    PoolPlan {
        nodes: vec![NodePlan {
            node: 0,
            cpus: (0..workers)
                .map(|worker| pinned_to.as_ref().map(|cpus| cpus[worker]))
                .collect(),
        }],
        source: PlanSource::Fallback(reason),
    }
}

#[cfg(feature = "hwloc")]
mod hwloc_plan {
    use hwlocality::Topology;
    use hwlocality::object::types::ObjectType;

    use super::{NodePlan, PlanSource, PoolOptions, PoolPlan};

    /// Groups the topology's cores by NUMA node and picks each node's workers.
    pub(super) fn plan(topology: &Topology, options: &PoolOptions) -> Result<PoolPlan, String> {
        let mut nodes = Vec::new();
        for numa in topology.objects_with_type(ObjectType::NUMANode) {
            let Some(node) = numa.os_index() else {
                continue;
            };
            if options
                .nodes
                .as_ref()
                .is_some_and(|wanted| !wanted.contains(&node))
            {
                continue;
            }
            let Some(node_cpus) = numa.cpuset() else {
                continue;
            };
            // Each core's processing units on this node, in OS order.
            let cores: Vec<Vec<usize>> = topology
                .objects_with_type(ObjectType::Core)
                .filter_map(|core| core.cpuset())
                .filter(|core_cpus| node_cpus.includes(*core_cpus))
                .map(|core_cpus| core_cpus.iter_set().map(usize::from).collect())
                .collect();
            if cores.is_empty() {
                continue; // a memory-only node (e.g. CXL or HBM without cores)
            }
            let wanted = options.workers_per_node.unwrap_or(cores.len()).max(1);
            // First PU of every core, then second PUs, and so on.
            let rounds = cores.iter().map(Vec::len).max().unwrap_or(1);
            let cpus: Vec<Option<usize>> = (0..rounds)
                .flat_map(|round| cores.iter().filter_map(move |pus| pus.get(round).copied()))
                .take(wanted)
                .map(|cpu| (!options.no_pinning).then_some(cpu))
                .collect();
            nodes.push(NodePlan { node, cpus });
        }
        if nodes.is_empty() {
            return Err(match &options.nodes {
                Some(wanted) => format!("no NUMA node with cores among {wanted:?}"),
                None => "no NUMA node with cores".to_owned(),
            });
        }
        Ok(PoolPlan {
            nodes,
            source: PlanSource::Hwloc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_is_one_node_pinned_in_cpu_order_when_every_worker_has_a_cpu() {
        let plan = fallback(&PoolOptions::default(), "test".to_owned());
        assert_eq!(plan.nodes.len(), 1);
        assert!(plan.workers() >= 1);
        assert!(plan.placements().iter().all(|(node, _)| *node == 0));

        let cpus = Some(vec![4, 5, 9]);
        let two = PoolOptions {
            workers_per_node: Some(2),
            ..PoolOptions::default()
        };
        let plan = fallback_on(&two, cpus.clone(), "test".to_owned());
        assert_eq!(plan.nodes[0].cpus, [Some(4), Some(5)]);
        let four = PoolOptions {
            workers_per_node: Some(4),
            ..PoolOptions::default()
        };
        let plan = fallback_on(&four, cpus.clone(), "test".to_owned());
        assert_eq!(
            plan.nodes[0].cpus, [None; 4],
            "more workers than CPUs: unpinned"
        );
        let unpinned = PoolOptions {
            no_pinning: true,
            ..two.clone()
        };
        let plan = fallback_on(&unpinned, cpus, "test".to_owned());
        assert_eq!(plan.nodes[0].cpus, [None; 2]);
        let plan = fallback_on(&two, None, "test".to_owned());
        assert_eq!(plan.nodes[0].cpus, [None; 2], "CPUs unknown: unpinned");
        let sized = fallback(
            &PoolOptions {
                workers_per_node: Some(5),
                ..PoolOptions::default()
            },
            "test".to_owned(),
        );
        assert_eq!(sized.workers(), 5);
    }

    #[test]
    fn detect_gives_at_least_one_worker_and_says_where_from() {
        let plan = PoolPlan::detect(&PoolOptions::default());
        assert!(plan.workers() >= 1);
        #[cfg(not(feature = "hwloc"))]
        assert!(matches!(plan.source, PlanSource::Fallback(_)));
    }

    #[cfg(feature = "hwloc")]
    mod synthetic {
        use super::*;

        /// 2 packages x 2 NUMA nodes x 8 cores x 2 PUs: PU OS indices are numbered in order,
        /// so core `c` of node `n` holds PUs `32n/2 + 2c` and `+1`.
        const TWO_SOCKETS: &str = "pack:2 numa:2 core:8 pu:2";

        #[test]
        fn workers_are_grouped_by_node_one_per_core_first() {
            let plan = PoolPlan::for_synthetic(TWO_SOCKETS, &PoolOptions::default()).unwrap();
            assert_eq!(plan.source, PlanSource::Hwloc);
            assert_eq!(plan.nodes.len(), 4);
            for (n, node) in plan.nodes.iter().enumerate() {
                assert_eq!(node.node, n);
                let expected: Vec<Option<usize>> =
                    (0..8).map(|core| Some(16 * n + 2 * core)).collect();
                assert_eq!(node.cpus, expected, "node {n}: first PU of each core");
            }
            assert_eq!(plan.workers(), 32);
        }

        #[test]
        fn more_workers_than_cores_take_the_sibling_pus() {
            let options = PoolOptions {
                workers_per_node: Some(10),
                ..PoolOptions::default()
            };
            let plan = PoolPlan::for_synthetic(TWO_SOCKETS, &options).unwrap();
            let node0 = &plan.nodes[0].cpus;
            assert_eq!(node0.len(), 10);
            assert_eq!(node0[8], Some(1), "then the second PU of core 0");
            assert_eq!(node0[9], Some(3));
            let all = PoolOptions {
                workers_per_node: Some(64),
                ..PoolOptions::default()
            };
            let full = PoolPlan::for_synthetic(TWO_SOCKETS, &all).unwrap();
            assert_eq!(full.nodes[1].cpus.len(), 16, "capped at the node's PUs");
        }

        #[test]
        fn chosen_nodes_and_no_pinning_are_honoured() {
            let options = PoolOptions {
                nodes: Some(vec![1, 3]),
                workers_per_node: Some(2),
                no_pinning: true,
            };
            let plan = PoolPlan::for_synthetic(TWO_SOCKETS, &options).unwrap();
            let nodes: Vec<usize> = plan.nodes.iter().map(|n| n.node).collect();
            assert_eq!(nodes, [1, 3]);
            assert!(plan.placements().iter().all(|(_, cpu)| cpu.is_none()));
            let placements: Vec<usize> = plan.placements().iter().map(|p| p.0).collect();
            assert_eq!(placements, [1, 1, 3, 3], "node by node");
            let none = PoolOptions {
                nodes: Some(vec![7]),
                ..PoolOptions::default()
            };
            assert!(PoolPlan::for_synthetic(TWO_SOCKETS, &none).is_err());
        }

        #[test]
        fn a_single_node_machine_is_one_group() {
            let plan = PoolPlan::for_synthetic("core:2 pu:1", &PoolOptions::default()).unwrap();
            assert_eq!(plan.nodes.len(), 1);
            assert_eq!(plan.nodes[0].cpus, [Some(0), Some(1)]);
        }
    }
}
