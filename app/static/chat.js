// The chat page: POST /api/chat and read the Server-Sent Events exactly as the book's widget
// does (split the byte stream on "\n", keep the lines that start with "data: ", parse the rest
// as JSON). Every piece of text from the server or the reader goes in with textContent: no
// HTML is ever built from strings.
(() => {
  "use strict";

  const log = document.getElementById("log");
  const form = document.getElementById("ask");
  const question = document.getElementById("question");
  const send = document.getElementById("send");
  const status = document.getElementById("status");
  const empty = document.getElementById("empty");

  let conversationId = null; // kept for follow-up questions
  let busy = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // A link target the page may follow: http(s) only, resolved against this page.
  function safeHref(source) {
    const raw = source.url || (source.file ? "/" + String(source.file).replace(/\.mdx?$/, "") : "");
    if (!raw) return null;
    try {
      const url = new URL(raw, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function addMessage(role, text) {
    if (empty) empty.hidden = true;
    const root = el("article", `message ${role}`);
    root.appendChild(el("div", "role", role === "user" ? "You" : "Book"));
    const body = el("div", "body", text);
    root.appendChild(body);
    log.appendChild(root);
    scrollToEnd();
    return { root, body };
  }

  function externalLink(text, href, className) {
    const link = el("a", className, text);
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    return link;
  }

  // The finished answer, with the little Markdown answers use: **bold**, `code`, [text](url),
  // and "[n]" citations as links to source n. Built node by node, never from an HTML string.
  const INLINE = /\*\*([^*\n]+)\*\*|`([^`\n]+)`|\[([^\]\n]+)\]\(([^)\s]+)\)|\[(\d+)\]/g;
  function renderAnswer(body, text, hrefs) {
    body.textContent = "";
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      const [whole, bold, code, linkText, linkUrl, citation] = match;
      let node = null;
      if (bold !== undefined) node = el("strong", null, bold);
      else if (code !== undefined) node = el("code", null, code);
      else if (linkText !== undefined) {
        const href = /^https?:\/\//.test(linkUrl) ? safeHref({ url: linkUrl }) : null;
        node = href ? externalLink(linkText, href) : document.createTextNode(linkText);
      } else if (hrefs[Number(citation) - 1]) {
        node = externalLink(whole, hrefs[Number(citation) - 1], "citation");
      }
      if (!node) continue;
      body.appendChild(document.createTextNode(text.slice(last, match.index)));
      body.appendChild(node);
      last = match.index + whole.length;
    }
    body.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderSources(root, sources) {
    if (!sources.length) return [];
    const list = el("ol", "sources");
    const hrefs = sources.map((source, i) => {
      const item = el("li", "source");
      const label = `[${i + 1}] ${source.heading || source.title || source.file || "source"}`;
      const href = safeHref(source);
      item.appendChild(href ? externalLink(label, href, "source-link") : el("span", "source-link", label));
      if (source.file) item.appendChild(el("span", "source-file", source.file));
      if (source.snippet) item.appendChild(el("p", "source-snippet", source.snippet));
      list.appendChild(item);
      return href;
    });
    const wrap = el("div", "sources-wrap");
    wrap.appendChild(el("div", "sources-title", "Sources"));
    wrap.appendChild(list);
    root.appendChild(wrap);
    return hrefs;
  }

  async function describeError(response) {
    let detail = response.statusText || "";
    try {
      const body = await response.json();
      if (body && body.message) detail = body.message;
    } catch (_) {
      // not JSON: keep the status text
    }
    return `Chat API error: ${response.status} ${detail}`.trim();
  }

  function setBusy(value) {
    busy = value;
    send.disabled = value;
    form.classList.toggle("busy", value);
  }

  async function ask(message) {
    setBusy(true);
    addMessage("user", message);
    const answer = addMessage("assistant", "");
    answer.root.classList.add("streaming");
    let text = "";
    let finished = false;

    const handle = (event) => {
      if (event.type === "metadata") {
        conversationId = event.conversation_id || conversationId;
      } else if (event.type === "token") {
        text += event.content || "";
        answer.body.textContent = text;
        scrollToEnd();
      } else if (event.type === "error") {
        answer.root.appendChild(el("p", "error", event.message || "The answer was interrupted."));
      } else if (event.type === "done") {
        finished = true;
        if (event.conversation_id) conversationId = event.conversation_id;
        const hrefs = renderSources(answer.root, event.sources || []);
        renderAnswer(answer.body, text, hrefs);
      }
    };

    try {
      const body = { message, mode: "general" };
      if (conversationId) body.conversation_id = conversationId;
      const response = await fetch("api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(await describeError(response));

      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (const line of lines) {
          if (line.startsWith("data: ")) handle(JSON.parse(line.slice(6)));
        }
      }
      if (buffer.startsWith("data: ")) handle(JSON.parse(buffer.slice(6)));
      if (!finished) throw new Error("The connection closed before the answer was complete.");
    } catch (error) {
      answer.root.appendChild(el("p", "error", error.message || String(error)));
      answer.root.classList.add("failed");
    } finally {
      answer.root.classList.remove("streaming");
      answer.root.classList.add("done");
      setBusy(false);
      scrollToEnd();
      question.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = question.value.trim();
    if (!message || busy) return;
    question.value = "";
    ask(message);
  });

  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => {
      question.value = button.textContent;
      form.requestSubmit();
    });
  }

  document.getElementById("new-conversation").addEventListener("click", () => {
    if (busy) return;
    conversationId = null;
    for (const node of log.querySelectorAll(".message")) node.remove();
    if (empty) empty.hidden = false;
    question.focus();
  });

  // Health, so a reader waking a sleeping Space sees why the first answer may wait.
  const labels = { healthy: "ready", starting: "starting…", degraded: "degraded", unhealthy: "unavailable" };
  async function checkHealth() {
    let state = "unreachable";
    try {
      const response = await fetch("api/health", { headers: { Accept: "application/json" } });
      state = (await response.json()).status || state;
    } catch (_) {
      // the service is not answering yet
    }
    status.dataset.state = state;
    status.textContent = labels[state] || state;
    if (state !== "healthy") window.setTimeout(checkHealth, 3000);
  }
  checkHealth();
  question.focus();
})();
