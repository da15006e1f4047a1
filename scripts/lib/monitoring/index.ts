/** Monitoring (MONITORING=true), one module per job: files and rendering, the textfile, the processes, the relay, the rules' state. */
export * from "./files";
export * from "./textfile";
export * from "./up";
export * from "./relay";
export * from "./rules";
export * from "./ui";
export * from "./pool-metrics";
