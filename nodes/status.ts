/**
 * `status`: lists the nodes registered in `MSIGHT:NODES` (ours and MSight's) with each heartbeat's age, and the
 * topics of `MSIGHT:TOPICS`, like MSight's `msight_status` (with NATS alone: the JetStream KV buckets). Exits 0, or 1
 * when the bus cannot be reached.
 *
 * @example
 * ```sh
 * deno task status
 * deno task status --json
 * ```
 * @module
 */

import { connectBus } from "../src/bus/connect.ts";
import { selectBus } from "../src/bus/select.ts";
import { denoEnv } from "../src/runtime/env.ts";
import { parseFlags } from "../src/runtime/flags.ts";
import { Logger } from "../src/runtime/log.ts";
import { judgeNode } from "../src/bus/registry.ts";
import { runTool } from "../src/node/run_tool.ts";
import { STATUS_FLAGS } from "../src/node/status_flags.ts";

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

async function main(): Promise<number> {
  const flags = parseFlags(
    STATUS_FLAGS,
    Deno.args,
    "status",
    {},
    "List registered MSight nodes and topics.",
    denoEnv,
  );
  const log = new Logger({ device: "-", node: "status", level: "WARNING" });
  // The registry is wherever the bus keeps it: Redis (standalone or cluster), or JetStream KV with NATS alone.
  const selection = selectBus({ busUrl: flags.busUrl, redisUrl: flags.redisUrl, env: denoEnv });
  const bus = await connectBus(selection, log, { name: "status", connectTimeoutS: 5 });
  try {
    const [nodes, topics] = await Promise.all([bus.registry.readNodes(), bus.registry.readTopics()]);
    const now = Date.now() / 1000;
    nodes.sort((a, b) => a.name.localeCompare(b.name));
    topics.sort((a, b) => a.name.localeCompare(b.name));
    if (flags.json) {
      console.log(JSON.stringify(
        {
          nodes: nodes.map((n) => {
            const j = judgeNode(n, now, flags.staleAfter);
            return {
              ...n,
              heartbeat_age_s: Number((now - n.last_heartbeat).toFixed(3)),
              judged: j.status,
              rule: j.rule,
            };
          }),
          topics,
        },
        null,
        2,
      ));
      return 0;
    }
    const where = bus.kind === "redis"
      ? `Redis ${bus.display}`
      : `${bus.display} (registry ${bus.registry.display})`;
    console.log(`${where}: ${nodes.length} node(s), ${topics.length} topic(s)\n`);
    const fmtTopic = (t: string | string[] | null) => (Array.isArray(t) ? t.join(",") : t ?? "-");
    console.log(table([
      ["NODE", "TYPE", "DEVICE", "STATUS", "HEARTBEAT", "PUBLISHES", "SUBSCRIBES", "JUDGED BY"],
      ...nodes.map((n) => {
        const j = judgeNode(n, now, flags.staleAfter);
        return [
          n.name,
          n.type,
          n.device,
          j.status,
          `${(now - n.last_heartbeat).toFixed(1)} s ago`,
          fmtTopic(n.publish_topic),
          fmtTopic(n.subscribe_topic),
          j.rule,
        ];
      }),
    ]));
    console.log("");
    console.log(
      table([
        ["TOPIC", "DATA TYPE", "DESCRIPTION"],
        ...topics.map((t) => [t.name, t.data_type, t.description ?? ""]),
      ]),
    );
    return 0;
  } finally {
    await bus.close();
  }
}

if (import.meta.main) await runTool("status", main);
