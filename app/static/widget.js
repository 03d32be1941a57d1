/* Book chat widget: one <script src=".../widget.js" async> on any page (a Docusaurus book or
 * plain HTML). No framework, no build step; everything lives in a Shadow DOM so the page's CSS
 * and ours never meet. Model and book text only ever reach the DOM through textContent. */
(function () {
  'use strict';
  if (window.__bookChatWidget) return;  // the script included twice: one widget
  window.__bookChatWidget = true;

  // --- configuration: the service is where this script came from ---------------------------------
  var script = document.currentScript;  // only defined while the script first runs: capture now
  var SERVICE = new URL('.', script ? script.src : location.href).href.replace(/\/$/, '');
  var CSS_URL = SERVICE + '/widget.css?v=__WIDGET_CSS_VERSION__';
  var KEY = 'book-chat:' + SERVICE;  // sessionStorage key, one per service
  var MAX_CONTEXT = 8000;
  var attr = function (name, fallback) { return (script && script.getAttribute('data-' + name)) || fallback; };
  var T = {  // every visible string, translatable through data-* attributes on the script tag
    title: attr('title', 'Ask the book'), open: attr('open-label', 'Open chat'),
    close: attr('close-label', 'Close chat'), placeholder: attr('placeholder', 'Ask a question about the book…'),
    send: attr('send-label', 'Send'), stop: attr('stop-label', 'Stop'), newChat: attr('new-chat-label', 'New chat'),
    askSel: attr('ask-selection-label', 'Ask about this'), helpful: attr('helpful-label', 'Helpful'),
    notHelpful: attr('not-helpful-label', 'Not helpful'), comment: attr('comment-placeholder', 'What was wrong? (optional)'),
    commentLabel: attr('comment-label', 'Comment (optional)'),
    sendComment: attr('send-comment-label', 'Send comment'), thanks: attr('thanks', 'Thanks for the feedback.'),
    waking: attr('waking', 'Waking up… the service is starting, your question will be sent when it is ready.'),
    limited: attr('rate-limited', 'Too many questions for now. Try again in {s} s.'),
    offline: attr('offline', 'Could not reach the service. Check your connection and send again.'),
    failed: attr('failed', 'The answer could not be completed. Your question is kept: send it again.'),
    stopped: attr('stopped', '(stopped)'), sources: attr('sources-label', 'Sources'),
    copy: attr('copy-label', 'Copy code'), copied: attr('copied-label', 'Copied'),
    selection: attr('selection-label', 'About the selected text:'), you: attr('you-label', 'You'),
    empty: attr('empty', 'Ask anything the book covers. Answers link to the sections they rest on.'),
    input: attr('input-label', 'Your question')
  };
  var startOpen = attr('open', '') === 'true';
  var fullPage = attr('mode', '') === 'page';  // the service's own page: the panel is the page

  // --- state, kept in sessionStorage so a citation click within the book keeps the chat ---------
  var state = { id: null, messages: [], open: false, scroll: null, selection: null };
  try { Object.assign(state, JSON.parse(sessionStorage.getItem(KEY) || '{}')); } catch (e) { /* private mode */ }
  function save() {
    if (body) state.scroll = body.scrollTop;
    try { sessionStorage.setItem(KEY, JSON.stringify(state, function (k, v) { return k === 'node' || k === 'wrap' ? undefined : v; })); } catch (e) { /* quota: not fatal */ }
  }

  // --- tiny DOM helper: createElement + textContent only, never an HTML parser -----------------------
  function el(tag, props, kids) {
    var node = document.createElement(tag);
    for (var k in props || {}) {
      if (k === 'text') node.textContent = props[k];
      else if (k.slice(0, 2) === 'on') node.addEventListener(k.slice(2), props[k]);
      else node.setAttribute(k, props[k]);
    }
    (kids || []).forEach(function (kid) { if (kid) node.append(kid); });
    return node;
  }

  // --- host and launcher: the only things created before the reader opens the panel --------------
  var host = el('div', { 'data-book-chat': '' });
  var root = host.attachShadow({ mode: 'open' });
  var launcherStyle = ':host{all:initial}.launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;' +
    'border:0;border-radius:28px;padding:12px 18px;font:600 15px/1 system-ui,sans-serif;cursor:pointer;' +
    'color:#fff;background:var(--bc-primary,#2e8555);box-shadow:0 2px 10px rgba(0,0,0,.3)}' +
    '.launcher:focus-visible{outline:3px solid #fff;outline-offset:-6px}[hidden]{display:none!important}' +
    '.sel{position:absolute;z-index:2147483001;border:0;border-radius:6px;padding:6px 10px;cursor:pointer;' +
    'font:600 13px system-ui,sans-serif;color:#fff;background:var(--bc-primary,#2e8555)}';
  // A constructed stylesheet adds no request and needs no inline <style> (strict CSPs allow it).
  if (root.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet(); sheet.replaceSync(launcherStyle); root.adoptedStyleSheets = [sheet];
  } else root.append(el('style', { text: launcherStyle }));
  var launcher = el('button', { type: 'button', 'class': 'launcher', 'aria-label': T.open,
    'aria-expanded': 'false', 'data-part': 'launcher', text: T.title, onclick: function () { openPanel(true); } });
  var selButton = el('button', { type: 'button', 'class': 'sel', hidden: '', 'data-part': 'ask-selection',
    text: T.askSel, onmousedown: function (e) { e.preventDefault(); }, onclick: askSelection });
  root.append(launcher, selButton);

  var panel, body, live, input, sendBtn, stopBtn, banner, selNote, controller, built = false;

  // --- theme: Docusaurus' data-theme and primary colour, followed live ----------------------------
  function applyTheme() {
    var html = document.documentElement;
    var dark = html.getAttribute('data-theme') === 'dark' ||
      (!html.hasAttribute('data-theme') && window.matchMedia && matchMedia('(prefers-color-scheme: dark)').matches);
    host.setAttribute('data-theme', dark ? 'dark' : 'light');
    var primary = getComputedStyle(html).getPropertyValue('--ifm-color-primary').trim();
    if (primary) host.style.setProperty('--bc-primary', primary); else host.style.removeProperty('--bc-primary');
  }
  new MutationObserver(applyTheme).observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme', 'style', 'class'] });

  // --- the panel, built on first open (and only then is the stylesheet requested) -----------------
  function build() {
    built = true;
    root.append(el('link', { rel: 'stylesheet', href: CSS_URL }));
    input = el('textarea', { rows: '2', maxlength: '2000', placeholder: T.placeholder, 'aria-label': T.input, 'data-part': 'input' });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    });
    sendBtn = el('button', { type: 'submit', 'class': 'primary', 'aria-label': T.send, text: T.send });
    stopBtn = el('button', { type: 'button', 'aria-label': T.stop, text: T.stop, hidden: '', onclick: stop });
    selNote = el('div', { 'class': 'selnote', hidden: '', 'data-part': 'selection' });
    banner = el('div', { 'class': 'banner', role: 'alert', hidden: '', 'data-part': 'status' });
    body = el('div', { 'class': 'body', role: 'log', 'aria-live': 'off', 'aria-label': T.title, tabindex: '0', 'data-part': 'log' });
    // role=log would announce every token; the finished answer is announced once, through `live`.
    body.addEventListener('scroll', function () { state.scroll = body.scrollTop; });
    live = el('div', { 'class': 'vh', 'aria-live': 'polite', 'data-part': 'announcer' });
    var form = el('form', { 'class': 'ask', onsubmit: function (e) { e.preventDefault(); submit(); } },
      [selNote, input, el('div', { 'class': 'actions' }, [stopBtn, sendBtn])]);
    panel = el('div', { 'class': 'panel' + (fullPage ? ' page' : ''), role: 'dialog', 'aria-label': T.title,
      'aria-modal': 'false', hidden: '', 'data-part': 'panel' }, [
      el('div', { 'class': 'head' }, [
        el('h2', { text: T.title }),
        el('button', { type: 'button', 'aria-label': T.newChat, text: T.newChat, onclick: newChat }),
        fullPage ? null : el('button', { type: 'button', 'class': 'x', 'aria-label': T.close, text: '×', onclick: closePanel })
      ]),
      fullPage ? null : el('div', { 'class': 'grip', 'aria-hidden': 'true', onpointerdown: resizeStart }),
      banner, body, form, live
    ]);
    panel.addEventListener('keydown', function (e) { if (e.key === 'Escape' && !fullPage) { e.stopPropagation(); closePanel(); } });
    root.append(panel);
    renderAll();
  }

  function openPanel(focus) {
    if (!built) build();
    panel.hidden = false; launcher.hidden = true; state.open = true;
    launcher.setAttribute('aria-expanded', 'true');
    if (!fullPage && innerWidth >= 997) dock(true);
    if (focus) input.focus();
    save();
  }
  function closePanel() {
    panel.hidden = true; launcher.hidden = false; state.open = false;
    launcher.setAttribute('aria-expanded', 'false');
    dock(false); save(); launcher.focus();
  }
  // On wide screens the page's text column reflows beside the panel instead of hiding under it.
  function dock(on) {
    var width = (state.width || 420) + 'px';
    document.documentElement.style.marginRight = on ? width : '';
    if (panel) panel.style.width = fullPage ? '' : width;
  }
  function resizeStart(e) {
    e.preventDefault();
    var move = function (m) { state.width = Math.max(320, Math.min(innerWidth - 200, innerWidth - m.clientX)); dock(innerWidth >= 997); };
    var up = function () { removeEventListener('pointermove', move); removeEventListener('pointerup', up); save(); };
    addEventListener('pointermove', move); addEventListener('pointerup', up);
  }

  // --- Markdown: a small renderer that builds nodes, so no HTML in an answer is ever parsed -------
  // Block level: fenced code, headings, lists, blockquotes, tables, paragraphs. Inline: code, bold,
  // italic, http(s) links, [n] citations. Anything else stays literal text. Re-run on each token
  // (answers are short).
  function renderMarkdown(text, sources, target) {
    target.textContent = '';
    blocks(text.replace(/\r/g, '').split('\n'), sources, target);
  }
  var ITEM = /^\s*([-*+]|\d+[.)])\s+/, QUOTE = /^\s*>/, RULE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
  function blocks(lines, sources, target) {
    var i = 0, para = [];
    function flush() { if (para.length) { target.append(el('p', {}, inline(para.join(' '), sources))); para = []; } }
    while (i < lines.length) {
      var line = lines[i], m;
      if ((m = /^\s*(```|~~~)\s*([\w+-]*)/.exec(line))) {
        flush(); var code = []; i++;
        while (i < lines.length && lines[i].trim().indexOf(m[1]) !== 0) code.push(lines[i++]);
        i++; target.append(codeBlock(code.join('\n'), m[2])); continue;
      }
      if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) { flush(); target.append(el('p', { 'class': 'h' }, inline(m[2], sources))); i++; continue; }
      if (ITEM.test(line)) {
        flush(); var list = el(/^\s*\d/.test(line) ? 'ol' : 'ul');
        while (i < lines.length && ITEM.test(lines[i])) {
          var item = lines[i++].replace(ITEM, '');
          while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !ITEM.test(lines[i])) item += ' ' + lines[i++].trim();
          list.append(el('li', {}, inline(item, sources)));
        }
        target.append(list); continue;
      }
      if (QUOTE.test(line)) {  // its lines, unquoted, are blocks of their own (a list in a quote)
        flush(); var quoted = [];
        while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].replace(/^\s*> ?/, ''));
        var quote = el('blockquote'); blocks(quoted, sources, quote); target.append(quote); continue;
      }
      if (line.indexOf('|') >= 0 && RULE.test(lines[i + 1] || '') && cells(line).length === cells(lines[i + 1]).length) {
        flush(); i = table(lines, i, sources, target); continue;
      }
      if (!line.trim()) flush(); else para.push(line.trim());
      i++;
    }
    flush();
  }
  // A GFM table: header row, alignment row, body rows while lines have a '|'. Returns the next line.
  function table(lines, i, sources, target) {
    var head = cells(lines[i]), align = cells(lines[i + 1]).map(function (c) { return /^:-+:$/.test(c) ? 'center' : /-:$/.test(c) ? 'right' : ''; });
    function row(tag, values) {
      return el('tr', {}, head.map(function (_, k) {
        var cell = el(tag, {}, inline(values[k] || '', sources));
        cell.style.textAlign = align[k];
        return cell;
      }));
    }
    var rows = [];
    for (i += 2; i < lines.length && lines[i].trim() && lines[i].indexOf('|') >= 0; i++) rows.push(row('td', cells(lines[i])));
    // Wide tables scroll inside their own box (focusable, so a keyboard can scroll it too).
    target.append(el('div', { 'class': 'table', tabindex: '0' }, [el('table', {}, [el('thead', {}, [row('th', head)]), el('tbody', {}, rows)])]));
    return i;
  }
  function cells(line) {  // split on '|' but not on an escaped '\|'
    return line.trim().replace(/^\|/, '').replace(/\|$/, '').replace(/\\\|/g, '\u0000').split('|')
      .map(function (c) { return c.trim().replace(/\u0000/g, '|'); });
  }
  var INLINE = /(`+)([^`]+?)\1|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|\b_([^_]+)_\b|\[([^\]]+)\]\(([^)\s]+)\)|\[(\d+)\]|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;
  function inline(text, sources) {
    var out = [], last = 0, m;
    INLINE.lastIndex = 0;
    while ((m = INLINE.exec(text))) {
      if (m.index > last) out.push(text.slice(last, m.index));
      if (m[2] !== undefined) out.push(el('code', { text: m[2] }));
      else if (m[3] || m[4]) out.push(el('strong', {}, inline(m[3] || m[4], sources)));
      else if (m[5] || m[6]) out.push(el('em', {}, inline(m[5] || m[6], sources)));
      else if (m[7]) out.push(safeLink(m[8], m[7]) || m[0]);
      else if (m[9]) out.push(citation(+m[9], sources) || m[0]);
      else out.push(safeLink(m[10], m[10]));
      last = INLINE.lastIndex;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }
  function safeLink(href, label) {
    var url;
    try { url = new URL(href, location.href); } catch (e) { return null; }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;  // javascript:, data:: text
    return el('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer', text: label });
  }
  function citation(n, sources) {
    var src = sources && sources[n - 1];
    if (!src) return el('span', { 'class': 'cite', text: '[' + n + ']' });  // sources arrive with `done`
    var a = sourceLink(src, '[' + n + ']');
    var name = 'Source ' + n + ': ' + (src.heading || src.title || src.file);
    // No page to open: the citation unfolds the section's text in the source list instead.
    if (!a) a = el('button', { type: 'button', onclick: function (e) {
      var d = e.target.closest('.msg').querySelectorAll('.sources details')[n - 1];
      if (d) { d.open = true; d.scrollIntoView({ block: 'nearest' }); }
    } });
    a.className = 'cite'; a.textContent = '[' + n + ']'; a.setAttribute('aria-label', name);
    return a;
  }
  // A section of this same site opens in place (the chat is restored from sessionStorage); any
  // other site opens in a new tab.
  function sourceLink(src, label) {
    var url, raw = String(src.url || '');
    // On the service's own page a bare route ("/guides/x#y", no BOOK_SITE_URL) is not served here.
    if (fullPage && !/^https?:\/\//i.test(raw)) return null;
    try { url = new URL(raw, location.href); } catch (e) { return null; }
    if (!raw || (url.protocol !== 'http:' && url.protocol !== 'https:')) return null;
    var same = url.origin === location.origin && !fullPage;
    var a = el('a', { href: url.href, text: label, 'data-part': 'source' });
    if (same) a.addEventListener('click', function () { state.open = true; save(); });
    else { a.target = '_blank'; a.rel = 'noopener noreferrer'; }
    return a;
  }
  function codeBlock(code, lang) {
    var copy = el('button', { type: 'button', 'class': 'copy', 'aria-label': T.copy, text: T.copy, onclick: function () {
      (navigator.clipboard ? navigator.clipboard.writeText(code) : Promise.reject()).then(function () {
        copy.textContent = T.copied; setTimeout(function () { copy.textContent = T.copy; }, 1500);
      }, function () {});
    } });
    return el('div', { 'class': 'code' }, [copy, el('pre', { tabindex: '0' }, [el('code', { 'data-lang': lang, text: code })])]);
  }

  // --- the conversation ------------------------------------------------------------------------------
  function renderAll() {
    body.textContent = '';
    if (!state.messages.length) body.append(el('p', { 'class': 'empty', text: T.empty }));
    state.messages.forEach(function (m) { body.append(messageNode(m)); });
    if (state.scroll != null) body.scrollTop = state.scroll;
    else body.scrollTop = body.scrollHeight;
  }
  function messageNode(m) {
    var node = el('div', { 'class': 'msg ' + m.role, 'data-role': m.role });
    if (m.role === 'user') {
      if (m.context) node.append(el('blockquote', { text: m.context }));
      node.append(el('p', { text: m.content }));
      return node;
    }
    var text = el('div', { 'class': 'text' });
    renderMarkdown(m.content + (m.status === 'interrupted' ? ' ' + T.stopped : ''), m.sources, text);
    node.append(text);
    if (m.sources && m.sources.length) {
      var list = el('ol', { 'class': 'sources', 'aria-label': T.sources });
      m.sources.forEach(function (s) {
        var a = sourceLink(s, s.heading || s.title || s.file);
        list.append(el('li', {}, [a || el('details', {}, [el('summary', { text: s.heading || s.title || s.file }),
          el('p', { 'class': 'snippet', text: s.snippet || '' })])]));
      });
      node.append(list);
    }
    if (m.id && !m.streaming) node.append(feedbackNode(m));
    m.node = text;
    return node;
  }
  // Drawn, not emoji: a page without an emoji font (headless Chromium, some Linux desktops) would
  // show empty boxes. Down is up turned over.
  var THUMB = 'M7 10.5 11 3c1.5 0 2.5 1 2.5 2.5V9h5.3a2 2 0 0 1 2 2.4l-1.4 7.3a2 2 0 0 1-2 1.6H7zM3 10.5h4v9.8H3z';
  function thumb(down) {
    var ns = 'http://www.w3.org/2000/svg', svg = document.createElementNS(ns, 'svg'), path = document.createElementNS(ns, 'path');
    svg.setAttribute('viewBox', '0 0 24 24'); svg.setAttribute('aria-hidden', 'true'); svg.setAttribute('focusable', 'false');
    path.setAttribute('d', THUMB); path.setAttribute('transform', down ? 'rotate(180 12 12)' : '');
    svg.append(path); return svg;
  }
  // What a selection question shows of its selection, and all that is kept of it in sessionStorage.
  function quoted(selection) { return selection && (selection.length > 300 ? selection.slice(0, 300) + '…' : selection); }
  function feedbackNode(m) {
    var box = el('div', { 'class': 'vote', role: 'group', 'aria-label': 'Feedback' });
    var comment = el('form', { 'class': 'comment', hidden: '' });
    var field = el('textarea', { rows: '2', maxlength: '1000', placeholder: T.comment, 'aria-label': T.commentLabel });
    comment.append(field, el('button', { type: 'submit', text: T.sendComment }));
    comment.addEventListener('submit', function (e) { e.preventDefault(); vote('down', field.value.trim() || null); comment.hidden = true; });
    function button(kind, label) {
      return el('button', { type: 'button', 'aria-label': label, title: label, 'aria-pressed': String(m.feedback === kind),
        'data-vote': kind, onclick: function () { vote(kind, null); if (kind === 'down') { comment.hidden = false; field.focus(); } } },
        [thumb(kind === 'down')]);
    }
    var up = button('up', T.helpful), down = button('down', T.notHelpful);
    var note = el('span', { 'class': 'thanks', role: 'status' });
    // One vote per answer: the service replaces an earlier vote (200) rather than adding one (201).
    function vote(kind, text) {
      m.feedback = kind; save();
      up.setAttribute('aria-pressed', String(kind === 'up')); down.setAttribute('aria-pressed', String(kind === 'down'));
      api('/api/feedback', { message_id: m.id, vote: kind, comment: text }).then(function (r) {
        note.textContent = r.ok ? T.thanks : '';
      }, function () {});
    }
    box.append(up, down, note, comment);
    return box;
  }
  function newChat() {
    stop(); state.id = null; state.messages = []; state.scroll = null; setSelection(null);
    showBanner(''); save(); renderAll(); input.focus();
  }

  // --- asking: POST /api/chat, read the SSE stream, render as it arrives --------------------------
  function api(path, payload, signal) {
    return fetch(SERVICE + path, { method: 'POST', signal: signal, credentials: 'omit',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' }, body: JSON.stringify(payload) });
  }
  function showBanner(text) { banner.textContent = text; banner.hidden = !text; }
  function busy(on) {
    // Read focus before hiding Stop: a hidden button loses it to <body>, and Esc would go nowhere.
    var onStop = root.activeElement === stopBtn || !root.activeElement;
    sendBtn.hidden = on; stopBtn.hidden = !on;
    if (on) stopBtn.focus(); else if (onStop) input.focus();
  }
  function stop() { if (controller) controller.abort(); }

  function submit(again) {
    var question = typeof again === 'string' ? again : input.value.trim();
    if (!question || controller) return;
    var payload = { message: question, format: 'markdown', page: location.href.split('#')[0] };
    if (state.id) payload.conversation_id = state.id;
    if (state.selection) { payload.mode = 'selection'; payload.context = state.selection; }
    var ask = { role: 'user', content: question, context: quoted(state.selection) };
    var answer = { role: 'assistant', content: '', sources: null, streaming: true };
    controller = new AbortController();
    busy(true);
    api('/api/chat', payload, controller.signal).then(function (r) {
      // A 503 is a cold start only when health says so; any other outage shows its own message.
      if (r.status === 503) return healthStatus().then(function (s) { if (s === 'starting') throw { wake: true }; return refused(r); });
      if (r.status === 429) throw { retry: +(r.headers.get('Retry-After') || 30) };
      if (!r.ok || !r.body) return refused(r);
      showBanner(''); setSelection(null);  // accepted: the question is on its way
      if (input.value.trim() === question) input.value = '';  // not what the reader typed while waiting
      state.messages.push(ask, answer);
      if (state.messages.length && body.querySelector('.empty')) body.textContent = '';
      body.append(messageNode(ask), answer.wrap = messageNode(answer));
      return readStream(r.body.getReader(), answer);
    }).then(finish, function (err) {
      if (err && err.wake) return wake(question, 0);
      controller = null; busy(false);
      if (err && err.retry) return showBanner(T.limited.replace('{s}', err.retry));
      if (err && err.name === 'AbortError') return answer.wrap ? finish(null, true) : undefined;
      if (answer.wrap) { state.messages.splice(state.messages.indexOf(ask), 2); answer.wrap.remove(); answer.wrap = null; input.value = question; }
      // A network failure is a TypeError whose own message ("Failed to fetch") tells a reader nothing.
      showBanner(err instanceof TypeError || navigator.onLine === false ? T.offline : (err && err.message) || T.failed);
      save();
    });

    function finish(done, aborted) {
      controller = null; busy(false);
      answer.streaming = false;
      if (aborted) answer.status = 'interrupted';
      if (done && done.error) { input.value = question; showBanner(T.failed); }
      var fresh = messageNode(answer); answer.wrap.replaceWith(fresh); answer.wrap = null; delete answer.node;
      fresh.scrollIntoView({ block: 'nearest' });
      live.textContent = answer.content.replace(/\s+/g, ' ').slice(0, 600);  // the whole answer, once
      save();
    }
  }
  function refused(r) {
    return r.json().then(function (j) { throw { message: (j && typeof j.message === 'string' && j.message) || T.failed }; }, function () { throw {}; });
  }
  function healthStatus() {
    return fetch(SERVICE + '/api/health', { credentials: 'omit', cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (j) { return j && j.status; }, function () { return null; });
  }
  // Cold start: the service is up but still indexing. The question waits in the box (Stop cancels)
  // while health is polled with backoff, and goes out once the service is past `starting`.
  function wake(question, attempt) {
    var waiting = controller;
    showBanner(T.waking);
    if (!attempt) waiting.signal.addEventListener('abort', function () { clearTimeout(waiting.timer); controller = null; busy(false); showBanner(''); });
    waiting.timer = setTimeout(function () {
      healthStatus().then(function (s) {
        if (waiting.signal.aborted) return;
        if (s === 'starting') return wake(question, attempt + 1);
        controller = null; showBanner(''); submit(question);
      });
    }, Math.min(1000 * Math.pow(1.5, attempt), 15000));
  }
  function readStream(reader, answer) {
    var decoder = new TextDecoder(), buffer = '', done = null, error = null;
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          if (!done) throw { message: T.failed };  // the stream was cut before `done`
          if (error) done.error = error;
          return done;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var lines = buffer.split('\n'); buffer = lines.pop();
        lines.forEach(function (line) {
          if (line.indexOf('data: ') !== 0) return;
          var ev = JSON.parse(line.slice(6));
          if (ev.type === 'metadata') { state.id = ev.conversation_id; answer.id = ev.message_id; }
          else if (ev.type === 'token') answer.content += ev.content;
          else if (ev.type === 'error') error = ev;
          else if (ev.type === 'done') { done = ev; answer.sources = ev.sources; answer.id = ev.message_id; state.id = ev.conversation_id; }
        });
        renderMarkdown(answer.content, answer.sources, answer.node);
        body.scrollTop = body.scrollHeight;
        return pump();
      });
    }
    return pump();
  }

  // --- selection: "Ask about this" -----------------------------------------------------------------
  function setSelection(text) {
    state.selection = text ? text.slice(0, MAX_CONTEXT) : null;
    if (!selNote) return;
    selNote.hidden = !state.selection;
    selNote.textContent = '';
    if (state.selection) selNote.append(el('span', { text: T.selection + ' ' }), el('q', { text: state.selection.slice(0, 160) + (state.selection.length > 160 ? '…' : '') }),
      el('button', { type: 'button', 'class': 'x', 'aria-label': 'Cancel selection', text: '×', onclick: function () { setSelection(null); save(); input.focus(); } }));
  }
  var pending = '';
  function askSelection() {
    selButton.hidden = true;
    openPanel(true); setSelection(pending); save();
  }
  document.addEventListener('selectionchange', function () {
    var sel = document.getSelection();
    var text = sel && !sel.isCollapsed ? sel.toString().trim() : '';
    if (!text || (sel.anchorNode && host.contains(sel.anchorNode))) { if (!text) selButton.hidden = true; return; }
    pending = text;
    var rect = sel.getRangeAt(0).getBoundingClientRect();
    selButton.style.top = (rect.bottom + scrollY + 6) + 'px';
    selButton.style.left = Math.max(8, rect.left + scrollX) + 'px';
    selButton.hidden = false;
  });

  // --- start: attach, restore, and catch up with the service after a reload -----------------------
  function start() {
    document.body.append(host);
    applyTheme();
    if (state.open || startOpen || fullPage) {
      openPanel(fullPage);
      setSelection(state.selection);
      if (state.id) refresh();
    }
    addEventListener('pagehide', save);
    // Crossing the phone breakpoint: dock beside the text, or go full screen.
    addEventListener('resize', function () { if (state.open && !fullPage) dock(innerWidth >= 997); });
  }
  // The stored copy may miss the end of an answer (a reload mid-stream): the service has it all.
  function refresh() {
    fetch(SERVICE + '/api/conversation/' + state.id, { credentials: 'omit' }).then(function (r) {
      if (r.status === 404) { state.id = null; state.messages = []; save(); renderAll(); return; }
      return r.ok && r.json().then(function (j) {
        var scroll = state.scroll;
        // The service keeps a question's mode, not its selection: the quote comes from this tab's copy.
        var quotes = state.messages.filter(function (m) { return m.context; });
        state.messages = j.messages.map(function (m) {
          var q = m.mode === 'selection' ? quotes.findIndex(function (c) { return c.content === m.content; }) : -1;
          return { id: m.role === 'assistant' ? m.id : undefined, role: m.role, content: m.content, sources: m.sources,
            status: m.status, feedback: m.feedback && m.feedback.vote, context: q < 0 ? undefined : quotes.splice(q, 1)[0].context };
        });
        state.scroll = scroll; renderAll(); save();
      });
    }, function () {});
  }
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
})();
