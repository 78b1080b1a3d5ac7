// Control actions shared by the pages: the token box in the top bar, the notice (toast) that
// reports what an action did, the confirmation dialog for actions that change the room, and
// `act()`, which runs a control call and turns a 401/403 into a clear "paste a control token"
// message rather than a silent failure.

import { AuthError, maskToken, sendJSON, storedToken, storeToken } from "./api.js";

const TOKEN_HELP =
  "see `<data_dir>/control-token.txt` on the server (written by the first `rackwatch run`; " +
  "data_dir defaults to rackwatch-data) or run `rackwatch token create --scope control`.";
// Success notices go by themselves; errors stay until read.
const NOTICE_MS = 4_000;

let box = null; // {details, summary, input, current}
let notice = null; // {root, text, action, timer}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Text with `code` spans made into <code>, so commands and paths read as such.
function richText(text) {
  const parts = text.split("`");
  return parts.map((part, i) => (i % 2 ? el("code", "", part) : document.createTextNode(part)));
}

// The token box: a <details> in the top bar; its panel drops below the bar. The saved token
// is shown masked (last four characters) and the input is emptied once saved.
export function mountTokenBox(container) {
  const details = el("details", "token-box");
  details.id = "token-box";
  const summary = el("summary", "token-summary");
  summary.append(el("span", "token-dot"), el("span", "token-label"));

  const form = el("form", "token-panel");
  const label = el("label", "token-title", "Control token");
  label.htmlFor = "token-input";
  const input = el("input", "token-input");
  Object.assign(input, {
    id: "token-input",
    type: "password",
    autocomplete: "off",
    spellcheck: false,
    placeholder: "rw_…",
  });
  const current = el("p", "token-current");
  const save = el("button", "btn btn-primary", "Save");
  save.type = "submit";
  const forget = el("button", "btn", "Forget");
  forget.type = "button";
  forget.id = "token-forget";
  const row = el("div", "btn-row");
  row.append(save, forget);
  const help = el("p", "hint");
  help.append(
    ...richText(
      "Needed to acknowledge alerts and to control fans, maintenance and faults; kept in " +
        `this browser only. To get one, ${TOKEN_HELP}`,
    ),
  );
  form.append(label, input, row, current, help);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      input.focus();
      return;
    }
    storeToken(token);
    input.value = "";
    showToken();
    details.open = false;
    notify("Control token saved in this browser; it is checked at the next action.", "ok");
  });
  forget.addEventListener("click", () => {
    storeToken("");
    showToken();
    notify("Control token removed from this browser.", "ok");
  });

  details.append(summary, form);
  container.append(details);
  box = { details, summary, input, current };
  showToken();
  // Another tab may save or forget the token.
  window.addEventListener("storage", showToken);
}

function showToken() {
  if (!box) return;
  const token = storedToken();
  box.details.dataset.hasToken = token ? "yes" : "no";
  box.summary.querySelector(".token-label").textContent = token
    ? `Token ${maskToken(token)}`
    : "No token";
  box.summary.title = token
    ? "A control token is saved in this browser"
    : "Paste a control token to acknowledge alerts and control fans";
  box.current.textContent = token ? `Saved: ${maskToken(token)}` : "No token saved.";
}

function mountNotice() {
  const root = el("div", "notice");
  root.id = "notice";
  root.hidden = true;
  root.setAttribute("role", "status");
  root.setAttribute("aria-live", "polite");
  const text = el("p", "notice-text");
  const action = el("button", "btn btn-primary notice-action", "Paste a token");
  action.type = "button";
  action.addEventListener("click", () => openTokenBox());
  const close = el("button", "notice-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => {
    root.hidden = true;
  });
  root.append(text, action, close);
  document.body.append(root);
  notice = { root, text, action, timer: null };
}

// Shows one message at the bottom of the screen. kind: "ok" | "error" | "auth".
export function notify(message, kind = "ok") {
  if (!notice) mountNotice();
  clearTimeout(notice.timer);
  notice.root.dataset.kind = kind;
  notice.root.setAttribute("role", kind === "ok" ? "status" : "alert");
  notice.text.replaceChildren(...richText(message));
  notice.action.hidden = kind !== "auth";
  notice.root.hidden = false;
  if (kind === "ok") {
    notice.timer = setTimeout(() => {
      notice.root.hidden = true;
    }, NOTICE_MS);
  }
}

export function openTokenBox() {
  if (!box) return;
  box.details.open = true;
  box.input.focus();
}

// Why a control call was refused, in words that say what to do next.
export function authMessage(error) {
  if (error.status === 403) {
    return `The saved token can only read. Paste a control token: ${TOKEN_HELP}`;
  }
  const what = storedToken()
    ? "The saved token was not accepted (revoked or mistyped)."
    : "This action needs a control token.";
  return `${what} Paste a control token: ${TOKEN_HELP}`;
}

let dialog = null; // {root, title, body, confirm}

function mountDialog() {
  const root = el("dialog", "confirm-dialog");
  root.id = "confirm-dialog";
  root.setAttribute("aria-labelledby", "confirm-title");
  root.setAttribute("aria-describedby", "confirm-body");
  const form = el("form");
  form.method = "dialog";
  const title = el("h2", "confirm-title");
  title.id = "confirm-title";
  const body = el("div", "confirm-body");
  body.id = "confirm-body";
  const cancel = el("button", "btn", "Cancel");
  cancel.value = "cancel";
  cancel.id = "confirm-cancel";
  const confirm = el("button", "btn btn-danger", "Confirm");
  confirm.value = "confirm";
  confirm.id = "confirm-ok";
  const row = el("div", "btn-row confirm-buttons");
  row.append(cancel, confirm);
  form.append(title, body, row);
  root.append(form);
  document.body.append(root);
  dialog = { root, title, body, confirm, cancel };
}

// Asks before an action that changes the room: a modal dialog that says what will happen.
// Resolves true only for the confirm button; Cancel, Escape or closing it resolve false.
//   confirmAction({title, lines: ["What happens.", ...], confirm: "Switch off"})
export function confirmAction({ title, lines, confirm = "Confirm" }) {
  if (!dialog) mountDialog();
  dialog.title.textContent = title;
  dialog.body.replaceChildren(...lines.map((line) => el("p", "", line)));
  dialog.confirm.textContent = confirm;
  dialog.root.returnValue = "";
  return new Promise((resolve) => {
    dialog.root.addEventListener("close", () => resolve(dialog.root.returnValue === "confirm"), {
      once: true,
    });
    dialog.root.showModal();
    dialog.cancel.focus(); // The safe choice is the default one.
  });
}

// Runs a control call: `await act("POST", "/fans/level", {...}, "Fan 1 set to high")`.
// With `ask` ({title, lines, confirm}), the user confirms first; Cancel sends nothing.
// Returns the answer, or null when the call was refused, cancelled or failed (already reported
// to the user).
export async function act(method, path, body, done, { ask = null } = {}) {
  // Without a token the server would refuse anyway: say so at once, send nothing.
  if (!storedToken()) {
    notify(authMessage({ status: 401 }), "auth");
    openTokenBox();
    return null;
  }
  if (ask && !(await confirmAction(ask))) return null;
  try {
    const answer = await sendJSON(method, path, body);
    if (done) notify(typeof done === "function" ? done(answer) : done, "ok");
    return answer;
  } catch (error) {
    if (error instanceof AuthError) {
      notify(authMessage(error), "auth");
      openTokenBox();
    } else {
      notify(`Not done: ${error.detail || error.message}`, "error");
    }
    return null;
  }
}

// Disables a button while its action runs, so a double click sends one command.
export async function busy(button, run) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await run();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
