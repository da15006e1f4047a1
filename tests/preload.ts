/** Loaded before every test file (bunfig.toml): the process state an entry script's runMain sets. */
import { TOOLKIT_UMASK } from "../scripts/lib/errors";

process.umask(TOOLKIT_UMASK);
