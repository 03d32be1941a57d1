// The chat page: POST /api/chat and read the Server-Sent Events exactly as the book's widget
// does (split the byte stream on "\n", keep the lines that start with "data: ", parse the rest
// as JSON). It asks for Markdown ("format": "markdown") and renders the little Markdown answers
// use with a small renderer of its own (no CDN: the page works offline). Every piece of text from
// the server or the reader goes in with textContent: no HTML is ever built from strings.
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

  // A link target the page may follow: an absolute http(s) URL only. Without BOOK_SITE_URL a
  // source's url is a bare route ("/guides/x#y") that this service does not serve: no link then,
  // the citation opens the section's text instead.
  function safeHref(source) {
    const raw = String((source && source.url) || "");
    if (!/^https?:\/\//i.test(raw)) return null;
    try {
      const url = new URL(raw);
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

  // Inline Markdown: **bold**, *emphasis*, `code`, [text](url) and "[n]" citations, node by node.
  const INLINE = /\*\*([^*\n]+)\*\*|\*([^*\s][^*\n]*)\*|`([^`\n]+)`|\[([^\]\n]+)\]\(([^)\s]+)\)|\[(\d+)\]/g;
  function renderInline(parent, text, cite) {
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      const [whole, bold, emphasis, code, linkText, linkUrl, citation] = match;
      let node = null;
      if (bold !== undefined) node = el("strong", null, bold);
      else if (emphasis !== undefined) node = el("em", null, emphasis);
      else if (code !== undefined) node = el("code", null, code);
      else if (linkText !== undefined) {
        const href = safeHref({ url: linkUrl });
        node = href ? externalLink(linkText, href) : document.createTextNode(linkText);
      } else if (cite) {
        node = cite(Number(citation), whole);
      }
      if (!node) continue;
      parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      parent.appendChild(node);
      last = match.index + whole.length;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // Block Markdown: paragraphs, "#" headings, "-"/"1." lists and ``` code blocks. Anything else
  // (a table, raw HTML) shows as the text it is.
  function renderMarkdown(body, text, cite) {
    body.textContent = "";
    const lines = text.split("\n");
    let paragraph = [];
    let list = null;
    const flush = () => {
      if (paragraph.length) {
        const p = el("p");
        renderInline(p, paragraph.join(" "), cite);
        body.appendChild(p);
      }
      paragraph = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = /^\s*(```|~~~)/.exec(line);
      const heading = /^\s*#{1,6}\s+(.*)$/.exec(line);
      const item = /^\s*(?:([-*+])|(\d{1,3})[.)])\s+(.*)$/.exec(line);
      if (fence) {
        flush();
        list = null;
        const code = [];
        for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) code.push(lines[i]);
        const pre = el("pre");
        pre.appendChild(el("code", null, code.join("\n")));
        body.appendChild(pre);
      } else if (heading) {
        flush();
        list = null;
        const title = el("p", "md-heading");
        const strong = el("strong");
        renderInline(strong, heading[1], cite);
        title.appendChild(strong);
        body.appendChild(title);
      } else if (item) {
        flush();
        const tag = item[1] ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = el(tag);
          body.appendChild(list);
        }
        const li = el("li");
        renderInline(li, item[3], cite);
        list.appendChild(li);
      } else if (!line.trim()) {
        flush();
        list = null;
      } else {
        if (list && /^\s+/.test(line) && list.lastChild) {
          list.lastChild.appendChild(document.createTextNode(" " + line.trim()));
        } else {
          list = null;
          paragraph.push(line.trim());
        }
      }
    }
    flush();
  }

  // A citation: a link to the section on the book's site, or (no site URL) a button that opens
  // the section's text in the list of sources.
  function citationFor(root, sources, details) {
    return (n, label) => {
      const source = sources[n - 1];
      if (!source) return document.createTextNode(label);
      const href = safeHref(source);
      if (href) return externalLink(label, href, "citation");
      const button = el("button", "citation", label);
      button.type = "button";
      button.title = source.heading || source.title || "";
      button.setAttribute("aria-label", `Show source ${n}: ${button.title}`);
      button.addEventListener("click", () => {
        const target = details[n - 1];
        if (!target) return;
        target.open = true;
        target.scrollIntoView({ block: "nearest" });
        target.querySelector("summary").focus();
      });
      return button;
    };
  }

  function renderSources(root, sources) {
    if (!sources.length) return [];
    const list = el("ol", "sources");
    const details = sources.map((source, i) => {
      const item = el("li", "source");
      const label = `[${i + 1}] ${source.heading || source.title || source.file || "source"}`;
      const href = safeHref(source);
      let expandable = null;
      if (href) {
        item.appendChild(externalLink(label, href, "source-link"));
        if (source.file) item.appendChild(el("span", "source-file", source.file));
        if (source.snippet) item.appendChild(el("p", "source-snippet", source.snippet));
      } else {
        // No book site to link to: the section's own text, one click away.
        expandable = el("details", "source-details");
        expandable.appendChild(el("summary", "source-link", label));
        if (source.file) expandable.appendChild(el("span", "source-file", source.file));
        expandable.appendChild(el("p", "source-text", source.snippet || ""));
        item.appendChild(expandable);
      }
      list.appendChild(item);
      return expandable;
    });
    const wrap = el("div", "sources-wrap");
    wrap.appendChild(el("div", "sources-title", "Sources"));
    wrap.appendChild(list);
    root.appendChild(wrap);
    return details;
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
        renderMarkdown(answer.body, text, null);
        scrollToEnd();
      } else if (event.type === "error") {
        answer.root.appendChild(el("p", "error", event.message || "The answer was interrupted."));
      } else if (event.type === "done") {
        finished = true;
        if (event.conversation_id) conversationId = event.conversation_id;
        const sources = event.sources || [];
        const details = renderSources(answer.root, sources);
        renderMarkdown(answer.body, text, citationFor(answer.root, sources, details));
      }
    };

    try {
      const body = { message, mode: "general", format: "markdown" };
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
