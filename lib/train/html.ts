/** Text into HTML and SVG safely. @internal */

/** Escapes the five characters that can change the meaning of HTML or XML text and attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}
