/** make mutation's arithmetic (scripts/lib/mutation.ts): scores from a Stryker report and the explained survivors. */
import { describe, expect, test } from "bun:test";
import { parseEquivalents, scoreModule, type ReportMutant, type StrykerReport } from "../../scripts/lib/mutation";

const m = (
  id: string,
  status: ReportMutant["status"],
  line: number,
  column = 3,
  mutatorName = "ConditionalExpression",
): ReportMutant => ({
  id,
  mutatorName,
  replacement: "true",
  status,
  location: { start: { line, column }, end: { line, column: column + 4 } },
});

describe("mutation scores", () => {
  const report: StrykerReport = {
    files: {
      "scripts/lib/x.ts": {
        source: "",
        mutants: [
          m("1", "Killed", 1),
          m("2", "Timeout", 2),
          m("3", "Survived", 9),
          m("4", "NoCoverage", 4, 7, "StringLiteral"),
          m("5", "CompileError", 5),
          m("6", "Ignored", 6),
        ],
      },
    },
  };

  test("Stryker's score counts killed and timed out against every valid mutant; explained survivors leave the adjusted denominator", () => {
    const eq = parseEquivalents(
      "# title\n- scripts/lib/x.ts:9:3 ConditionalExpression `a` → `true`: why\n- not a key line\n",
    );
    expect([...eq]).toEqual(["scripts/lib/x.ts:9:3 ConditionalExpression"]);
    const s = scoreModule(report, "scripts/lib/x.ts", eq);
    expect(s).toEqual({
      file: "scripts/lib/x.ts",
      total: 4,
      killed: 2,
      survived: 2,
      explained: 1,
      score: 50,
      adjustedScore: (100 * 2) / 3,
      unexplained: [{ file: "scripts/lib/x.ts", line: 4, column: 7, mutator: "StringLiteral", replacement: "true" }],
    });
  });

  test("a module missing from the report is an error naming what is there; no mutants scores 100", () => {
    expect(() => scoreModule(report, "scripts/lib/y.ts", new Set())).toThrow(
      "the report has no file scripts/lib/y.ts (it has scripts/lib/x.ts)",
    );
    expect(
      scoreModule({ files: { "/abs/scripts/lib/z.ts": { source: "", mutants: [] } } }, "scripts/lib/z.ts", new Set())
        .score,
    ).toBe(100);
  });
});
