/**
 * Loads Project Wycheproof vectors from `../shared/vectors/wycheproof/` (beside the repository
 * root). Where that folder is absent (a clone outside this team), the caller gets `undefined`
 * and a visible notice, so the tests that need it are skipped, never silently passed.
 *
 * @module
 */

/** The folder the vectors are read from. */
export const WYCHEPROOF_DIR = new URL("../../../shared/vectors/wycheproof/", import.meta.url);

/** Reads every test of every group of one Wycheproof file, or undefined when it is absent. */
export async function loadWycheproof<T>(file: string): Promise<T[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(new URL(file, WYCHEPROOF_DIR));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    // deno-lint-ignore no-console
    console.warn(
      `warning: skipping Wycheproof ${file}: folder ${
        decodeURIComponent(WYCHEPROOF_DIR.pathname)
      } not found (public vectors live in ../shared/vectors/, see STYLE.md)`,
    );
    return undefined;
  }
  const json = JSON.parse(text) as { testGroups: { tests: T[] }[] };
  return json.testGroups.flatMap((group) => group.tests);
}
