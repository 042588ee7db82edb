// Scope's search syntax, over the API's node summaries. Terms are separated by commas or
// spaces (outside a `field: value` pair) and must all match:
//   text          a label, minor label or metadata value contains it (any case)
//   /regex/       a label, minor label or metadata value matches it
//   field: value  the metadata field of that id or one-word label contains the value
//                 (equals it, for a number)
//   metric > 4%   the metric of that id or label compares so: <, <=, >, >=, =, with an
//                 optional unit (%, kb, mb, gb; bytes are the API's unit for memory)

const UNITS = { "%": 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
const COMPARISON = /^([\w.#-]+)\s*(<=|>=|<|>|=)\s*(-?[\d.]+)\s*(%|b|kb|mb|gb)?$/i;
const FIELD = /^([\w.#-]+)\s*:\s*(.+)$/;

/**
 * The predicate a query stands for, or `{ error }` when a term cannot be read (a bad regex,
 * a comparison without a number). An empty query matches everything.
 */
export function parseSearch(query) {
  const terms = splitTerms(query);
  const tests = [];
  for (const term of terms) {
    const test = parseTerm(term);
    if (test.error) return { error: `${JSON.stringify(term)}: ${test.error}` };
    tests.push(test.matches);
  }
  return { matches: (summary) => tests.every((matches) => matches(summary)) };
}

/**
 * Several queries together (the pinned searches and the one being typed): a node must match
 * every one that can be read. `errors` holds, by index, why a query cannot (or null).
 */
export function parseSearches(queries) {
  const parsed = queries.map(parseSearch);
  const tests = parsed.filter((p) => p.matches).map((p) => p.matches);
  return { matches: (summary) => tests.every((matches) => matches(summary)), errors: parsed.map((p) => p.error ?? null) };
}

/** Commas always split; spaces split too, except around a `:` or a comparison's operator. */
function splitTerms(query) {
  return query
    .split(",")
    .flatMap((part) => part.trim().split(/\s+(?![:<>=])(?<![:<>=]\s*)/))
    .map((term) => term.trim())
    .filter(Boolean);
}

function parseTerm(term) {
  const comparison = term.match(COMPARISON);
  if (comparison) {
    const [, field, operator, number, unit] = comparison;
    const limit = Number(number) * (UNITS[unit?.toLowerCase()] ?? 1);
    if (!Number.isFinite(limit)) return { error: "not a number" };
    return { matches: (summary) => rows(summary.metrics, field).some((row) => compare(row.value, operator, limit)) };
  }
  const pair = term.match(FIELD);
  if (pair) {
    const [, field, value] = pair;
    const wanted = value.trim().toLowerCase();
    return {
      matches: (summary) =>
        rows(summary.metadata, field).some((row) =>
          row.dataType === "number" ? Number(row.value) === Number(wanted) : row.value.toLowerCase().includes(wanted),
        ),
    };
  }
  if (term.length > 2 && term.startsWith("/") && term.endsWith("/")) {
    let pattern;
    try {
      pattern = new RegExp(term.slice(1, -1), "i");
    } catch (error) {
      return { error: error.message };
    }
    return { matches: (summary) => texts(summary).some((text) => pattern.test(text)) };
  }
  const wanted = term.toLowerCase();
  return { matches: (summary) => texts(summary).some((text) => text.toLowerCase().includes(wanted)) };
}

/** The rows whose id or label is `field`, in any case. */
function rows(list, field) {
  const name = field.trim().toLowerCase();
  return (list ?? []).filter((row) => row.id.toLowerCase() === name || row.label.toLowerCase() === name);
}

function texts(summary) {
  return [summary.label, summary.labelMinor ?? "", ...(summary.metadata ?? []).map((row) => row.value)];
}

function compare(value, operator, limit) {
  switch (operator) {
    case "<":
      return value < limit;
    case "<=":
      return value <= limit;
    case ">":
      return value > limit;
    case ">=":
      return value >= limit;
    default:
      return value === limit;
  }
}
