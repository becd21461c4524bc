/**
 * `deno task bench`: runs every benchmark. Figures are ratios against a baseline measured in the
 * same run; tests never assert timings.
 *
 * @module
 */

import { benchRecordSize } from "./record_size.ts";

await benchRecordSize();
