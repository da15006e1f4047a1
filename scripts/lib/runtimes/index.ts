/** Open a stack's runtime for one verb: the runtime RUNTIME resolves to, or RUNTIME_UNSUPPORTED when it does not carry the verb out. */
import type { Config } from "../config";
import { pickRuntime, unsupported, type Runtime, type RuntimeName, type Verb } from "../runtime";
import { DockerRuntime } from "./docker";
import { NativeRuntime } from "./native";

export const runtimeFor = (cfg: Config, name: RuntimeName): Runtime =>
  name === "docker" ? new DockerRuntime(cfg) : new NativeRuntime(cfg);

export async function openRuntime(cfg: Config, verb: Verb): Promise<Runtime> {
  const rt = runtimeFor(cfg, await pickRuntime(cfg));
  if (!rt.verbs.includes(verb)) {
    const auto = (process.env.RUNTIME || cfg.runtime) === "auto";
    const err = unsupported(
      rt.name,
      `make ${verb}`,
      `run it with RUNTIME=native (the ${rt.name} runtime carries out ${rt.verbs.map((v) => `make ${v}`).join(", ")})`,
    );
    if (auto)
      err.message += ` (RUNTIME=auto chose ${rt.name}: the native packages are missing and cannot be installed here)`;
    throw err;
  }
  return rt;
}
