/** RUNTIME=auto picks docker when an engine answers, else native. */
import type { Config } from "./config";
import { run, which } from "./exec";

export async function dockerEngineAnswers(): Promise<boolean> {
  if (!(await which("docker"))) return false;
  const r = await run(["docker", "info", "--format", "{{.ServerVersion}}"], { nothrow: true, timeoutMs: 5000 }).catch(() => undefined);
  return Boolean(r && r.code === 0 && r.stdout.trim());
}

export async function pickRuntime(cfg: Config): Promise<"native" | "docker"> {
  const forced = process.env.RUNTIME;
  const want = forced === "native" || forced === "docker" || forced === "auto" ? forced : cfg.runtime;
  if (want !== "auto") return want;
  return (await dockerEngineAnswers()) ? "docker" : "native";
}
