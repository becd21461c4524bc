/**
 * The cluster benchmark's projection of what 10 machines would carry: arithmetic on the figures
 * the run measured, with every assumption written out in the lines it returns. A projection, not
 * a measurement: it says so in its first line.
 *
 * @module
 */

/** What the projection is computed from. */
export interface Projection {
  /** Cores of this machine, taken as those of each of the 10. */
  cores: number;
  /** Relay CPU milliseconds (all relays) per room message, by relays serving the room (1, 2, 3). */
  relayCpuMsPerMessage: { relays: number; ms: number }[];
  /** The same for the single relay without NATS. */
  unclusteredCpuMsPerDelivery: number;
  /** NATS CPU milliseconds (all nodes) per room message, by relays serving the room (1, 2, 3). */
  natsCpuMsPerMessage: { relays: number; ms: number }[];
  /** Members of the measured room. */
  roomMembers: number;
  natsNodes: number;
  replicas: number;
}

const MACHINES = 10;
/** NATS nodes of the projected cluster, one core each (three for R3). */
const NATS_CORES = 3;

/** Least squares line `a + b·x` through the points. */
function fitLine(points: { x: number; y: number }[]): { a: number; b: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  const b = sxx === 0 ? 0 : points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx;
  return { a: my - b * mx, b: Math.max(0, b) };
}

function round(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)} million`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)} thousand`;
  return value.toFixed(0);
}

/**
 * The projection, one sentence per line, for the printed report and RESULTS.md.
 *
 * @param input the measured figures
 */
export function projection(input: Projection): string[] {
  const relayCores = MACHINES * input.cores - NATS_CORES;
  // Every relay serving a room reads and applies each of its entries (a cost per relay and per
  // message), and writes one record per member it serves (a cost per delivery).
  const relayFit = fitLine(input.relayCpuMsPerMessage.map((m) => ({ x: m.relays, y: m.ms })));
  const perEntry = relayFit.b;
  const perDelivery = Math.max(0, relayFit.a) / (input.roomMembers - 1);
  const relayMs = (members: number, relays: number) =>
    relays * perEntry + (members - 1) * perDelivery;
  const nats = fitLine(input.natsCpuMsPerMessage.map((m) => ({ x: m.relays, y: m.ms })));
  const natsMs = (relays: number) => nats.a + nats.b * relays;
  const lines = [
    `Projection (arithmetic on the figures above, not a measurement) for ${MACHINES} machines like this one (${input.cores} cores each), rooms of ${input.roomMembers} and of 100 members:`,
    `Relays: a relay is one JavaScript thread, so one relay per core; ${NATS_CORES} of the machines also give a core each to a NATS node (a 3-node cluster, R3 as measured${
      input.natsNodes === 3 ? "" : `; this run had ${input.natsNodes} node(s), R${input.replicas}`
    }), leaving ${relayCores} relay cores, with connections spread evenly (a client picks a relay from its list). Measured relay CPU per room message, all relays: ${
      input.relayCpuMsPerMessage.map((m) => `${m.ms.toFixed(2)} ms with ${m.relays} relay(s)`)
        .join(", ")
    }; fitted as ${
      perEntry.toFixed(3)
    } ms per relay serving the room (reading and applying the entry) + ${
      perDelivery.toFixed(3)
    } ms per delivery (${
      input.unclusteredCpuMsPerDelivery.toFixed(3)
    } ms per delivery for a single relay without NATS), taken to hold beyond 3 relays.`,
    `NATS: every room message is one entry of the one stream SECURECHAT_ROOMS, so one stream leader orders every room's entries (a stream does not spread over nodes; more streams would be a protocol change), and every relay serving the room reads it. Measured NATS CPU per message, all nodes: ${
      input.natsCpuMsPerMessage.map((m) => `${m.ms.toFixed(2)} ms with ${m.relays} relay(s)`).join(
        ", ",
      )
    }; fitted as ${nats.a.toFixed(2)} + ${
      nats.b.toFixed(2)
    } ms per relay serving the room, and taken to hold beyond 3 relays. With its ${NATS_CORES} cores fully used and the work shared evenly (optimistic: the leader does more than the followers), NATS orders ${
      NATS_CORES * 1000
    } / that many messages a second.`,
  ];
  for (const members of [input.roomMembers, 100]) {
    const perMessage = members - 1;
    for (const spread of ["one relay", "every relay"] as const) {
      const relaysPerRoom = spread === "one relay" ? 1 : Math.min(members, relayCores);
      const natsMessages = (NATS_CORES * 1000) / natsMs(relaysPerRoom);
      const natsBound = natsMessages * perMessage;
      const relayBound = (relayCores * 1000 / relayMs(members, relaysPerRoom)) * perMessage;
      const carried = Math.min(relayBound, natsBound);
      lines.push(
        `Rooms of ${members}, members of a room on ${
          spread === "one relay"
            ? "one relay (clients pick the relay by the room's token)"
            : `every relay they happen to dial (${relaysPerRoom} relays per room)`
        }: NATS allows ${round(natsMessages)} messages/s = ${
          round(natsBound)
        } deliveries/s, relays ${round(relayBound)}: about ${round(carried)} deliveries/s (${
          round(carried / perMessage)
        } messages/s), limited by ${carried === relayBound ? "the relays' CPU" : "NATS"}.`,
      );
    }
  }
  lines.push(
    "Left out: members' MLS work (on their own devices), network bandwidth and latency between machines (loopback here), JetStream disk writes on slower disks, memory per connection, and NATS's own limits beyond CPU (a single stream's leader is the first ceiling).",
  );
  return lines;
}
