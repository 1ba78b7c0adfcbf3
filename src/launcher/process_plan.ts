/**
 * Which nodes of a pipeline share a process. Every node runs in its own process except the RTSP nodes, which `up`
 * runs up to `cameras_per_process` to a process (`rtsp ... --next ...`, `src/node/node_group.ts`): each camera is
 * still its own node, but the cameras of a process share one Deno runtime (~70 MiB of RSS each paid once,
 * docs/design.md "Capacity"). Only RTSP nodes that would run alike are grouped: the same environment, and
 * `restart: true` (a node with `restart: false` keeps a process of its own, so that it is not started again).
 *
 * @example
 * ```ts
 * import type { PipelineNode } from "./pipeline_config.ts";
 * import { planProcesses } from "./process_plan.ts";
 * declare const nodes: PipelineNode[];
 * for (const p of planProcesses(nodes, 8)) console.log(p.name, p.nodes.map((n) => n.name));
 * ```
 * @module
 */

/** RTSP nodes per process when the pipeline file does not say (`cameras_per_process`). */
export const DEFAULT_CAMERAS_PER_PROCESS = 8;

/** What the plan reads of a node (a `PipelineNode` of `pipeline_config.ts`). */
export interface PlannedNode {
  name: string;
  type: string;
  restart: boolean;
  env: Record<string, string>;
}

/** One process of the pipeline: one node, or several RTSP nodes. */
export interface ProcessPlan<N extends PlannedNode = PlannedNode> {
  /** The node's name, or `rtsp group K` (no node name has a space, so it cannot clash with one). */
  name: string;
  /** In pipeline order; more than one only for RTSP nodes. */
  nodes: N[];
}

/**
 * The processes of `nodes` (in pipeline order), each placed where its first node is, RTSP nodes grouped by
 * `perProcess`; a group of one is a plain process named after its node.
 */
export function planProcesses<N extends PlannedNode>(
  nodes: readonly N[],
  perProcess: number,
): ProcessPlan<N>[] {
  const plans: ProcessPlan<N>[] = [];
  // The group that is filling, per kind of run (environment): a later node of the same kind joins it.
  const filling = new Map<string, ProcessPlan<N>>();
  let groups = 0;
  for (const node of nodes) {
    if (node.type !== "rtsp" || !node.restart || perProcess <= 1) {
      plans.push({ name: node.name, nodes: [node] });
      continue;
    }
    const key = JSON.stringify(Object.entries(node.env).sort());
    const open = filling.get(key);
    if (open && open.nodes.length < perProcess) {
      open.nodes.push(node);
      continue;
    }
    const plan: ProcessPlan<N> = { name: "", nodes: [node] };
    filling.set(key, plan);
    plans.push(plan);
  }
  for (const p of plans) {
    if (p.nodes.length > 1) p.name = `rtsp group ${++groups}`;
    else if (p.name === "") p.name = p.nodes[0].name;
  }
  return plans;
}
