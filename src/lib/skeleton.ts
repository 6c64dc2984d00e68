// Look-alike usernames (UTS #39 §4, "confusable detection"). Two strings are confusable when their
// skeletons are equal: NFD, default-ignorable code points removed, each character replaced by its
// prototype from Unicode's confusables.txt (Cyrillic `е` → Latin `e`, `0` → `O`, `m` → `rn`), NFD
// again. The table is Unicode's own, shipped by the unhomoglyph package (confusables.txt 13.0,
// generated, not a hand list); its version is pinned in package.json.
// Usernames are unique case-insensitively, so the skeleton compared is case-folded too, between
// two passes: `Ian` (capital i) and `lan` look alike although `ian` and `lan` do not, and a
// lower-case letter may have a prototype of its own.
import unhomoglyph from 'unhomoglyph';

const DEFAULT_IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;

/** The UTS #39 skeleton of a string. */
export function skeleton(value: string): string {
  return unhomoglyph(value.normalize('NFD').replace(DEFAULT_IGNORABLE, '')).normalize('NFD');
}

/** What must be unique among usernames: the skeleton, case-folded. */
export function usernameSkeleton(username: string): string {
  return skeleton(skeleton(username).toLowerCase());
}
