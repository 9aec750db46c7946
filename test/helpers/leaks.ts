import { msleep, now } from "../../lib/index";

const KINDS = new Set(["TCPSocketWrap", "TCPServerWrap", "PipeWrap", "PipeServerWrap", "Timeout"]);

function count(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (KINDS.has(r)) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/** Takes a baseline; the returned check waits (bounded) for resources to go back to it. */
export function resourceBaseline(): () => Promise<string[]> {
  const base = count();
  return async () => {
    let extra: string[] = [];
    for (let i = 0; i < 60; i++) {
      const c = count();
      extra = [...c].filter(([k, v]) => v > (base.get(k) ?? 0)).map(([k, v]) => `${k}: ${v - (base.get(k) ?? 0)}`);
      if (extra.length === 0) return [];
      await msleep(now() + 50);
    }
    return extra;
  };
}
