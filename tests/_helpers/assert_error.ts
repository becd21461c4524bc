/**
 * Assertion predicates for `rejects()` / `throws()` on securechat errors.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";
import type { SecurechatError } from "../../lib/core/errors.ts";

/** Asserts an error of `errorClass` with `code` (and `alert`, when given). */
export function isCode(
  errorClass: abstract new (...args: never[]) => SecurechatError,
  code: string,
  alert?: string,
) {
  return (error: unknown) => {
    ok(error instanceof errorClass, `expected ${errorClass.name}, got ${error}`);
    strictEqual(error.code, code);
    if (alert !== undefined) strictEqual(error.alert, alert);
    return true;
  };
}
