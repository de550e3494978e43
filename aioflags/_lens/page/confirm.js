// The flag lens's confirm page: the link's token is in the address's
// fragment (#aioflags_lens=TOKEN), which no server ever receives. The page
// takes it out of the address bar and of this history entry at once, shows
// what the token asks for (read here for display only: the server verifies
// it), and posts it to the same address when the user turns the lens on.
// Everything is set as text, never parsed as markup.
"use strict";
(() => {
  const name = "aioflags_lens";
  const $ = (id) => document.getElementById(id);
  $("needs-script").hidden = true; // (shown to a browser that runs no script)
  let token = null;
  for (const piece of location.hash.slice(1).split("&")) {
    const at = piece.indexOf("=");
    if (at < 0) continue;
    try {
      if (decodeURIComponent(piece.slice(0, at)) === name) {
        token = decodeURIComponent(piece.slice(at + 1));
        break;
      }
    } catch (error) {
      // not percent-encoded text: not the lens's
    }
  }
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);

  function problem(text) {
    $("problem").textContent = text;
    $("problem").hidden = false;
  }
  if (!token) {
    problem(
      "This link carries no lens token: a lens link ends with #aioflags_lens=… " +
        "(a token in the address itself, the older form, is never used). Ask for a new link.",
    );
    return;
  }
  let claims = null;
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    claims = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    claims = null;
  }
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
    problem("This link's token cannot be read: ask for a new link.");
    return;
  }
  $("site").textContent = location.host;
  const flags = claims.flags !== null && typeof claims.flags === "object" ? Object.entries(claims.flags) : [];
  for (const [key, value] of flags) {
    const item = document.createElement("li");
    item.textContent = `${key} → ${JSON.stringify(value)}`;
    $("flags").append(item);
  }
  if (!flags.length) {
    const item = document.createElement("li");
    item.textContent = "(no flag: only the trace)";
    $("flags").append(item);
  }
  $("who").textContent =
    typeof claims.sub === "string"
      ? `Only in evaluations of the context key ${JSON.stringify(claims.sub)}.`
      : "In every evaluation your requests make.";
  if (typeof claims.exp === "number") {
    const until = new Date(claims.exp * 1000);
    const minutes = Math.round((until.getTime() - Date.now()) / 60000);
    $("until").textContent =
      minutes > 0
        ? `Until ${until.toLocaleString()} (in ${minutes} min), or until you clear this site's aioflags_lens cookie.`
        : `This link expired at ${until.toLocaleString()}: ask for a new one.`;
  }
  $("trace").hidden = claims.trace !== true;
  $("token").value = token;
  $("turn-on").action = location.pathname + location.search;
  $("ask").hidden = false;
})();
