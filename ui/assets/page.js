// The app's page script (served through launch(head=...)). No data leaves the page.
(() => {
  // The page is Japanese whatever the browser's language (Gradio sets <html lang> to the browser's).
  const root = document.documentElement;
  const keepJa = () => { if (root.lang !== "ja") root.lang = "ja"; };
  keepJa();
  new MutationObserver(keepJa).observe(root, { attributes: true, attributeFilter: ["lang"] });

  // New answers are announced: the hidden #vqa-live box becomes a polite live region.
  new MutationObserver(() => {
    const live = document.getElementById("vqa-live");
    if (live && !live.hasAttribute("aria-live")) {
      live.setAttribute("role", "status");
      live.setAttribute("aria-live", "polite");
    }
  }).observe(document, { childList: true, subtree: true });

  // Gradio names each chat message "bot's message: " + its source, which for our answers is
  // HTML markup; without that name a screen reader reads the message itself, in its own lang.
  // Its scroll button is named in English; on this page it is 下へスクロール.
  const SCROLL = "下へスクロール";
  const unname = (el) => {
    if (!el.matches) return;
    if (el.matches('#vqa-chat [data-testid="bot"], #vqa-chat [data-testid="user"]') && el.hasAttribute("aria-label")) {
      el.removeAttribute("aria-label");
    } else if (el.matches("#vqa-chat .scroll-down-button-container button") && el.getAttribute("aria-label") !== SCROLL) {
      el.setAttribute("aria-label", SCROLL);
      el.title = SCROLL;
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") unname(r.target);
      else r.addedNodes.forEach((n) => {
        if (n.nodeType !== 1) return;
        unname(n);
        n.querySelectorAll("[data-testid], button").forEach(unname);
      });
    }
  }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ["aria-label"] });

  // A new answer is shown from its question down (the chat does not jump to its end, where
  // the answer's 出典 are on narrow screens).
  let lastAnswer = null;
  new MutationObserver(() => {
    const answers = document.querySelectorAll("#vqa-chat .vqa-answer");
    const answer = answers[answers.length - 1];
    if (!answer || answer === lastAnswer) return;
    lastAnswer = answer;
    const bubbles = [...document.querySelectorAll('#vqa-chat [data-testid="user"]')];
    const start = bubbles[bubbles.length - 1] || answer;
    let box = answer.parentElement;
    while (box && box.scrollHeight <= box.clientHeight + 1) box = box.parentElement;
    if (box && box !== document.documentElement && box !== document.body) {
      box.scrollTop += start.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
    }
  }).observe(document, { childList: true, subtree: true });

  window.vqaFurigana = (on) => { root.classList.toggle("vqa-furigana", !!on); };

  const visible = (el) => el && el.getClientRects().length > 0;
  const show = (el) => {
    el.scrollIntoView({ block: "center" });
    el.focus({ preventScroll: true });
  };

  // Opens the ビジョンを読む tab at a chunk, highlighted; the tab may render its content late.
  const openPlan = (id) => {
    const tab = [...document.querySelectorAll('button[role="tab"]')].find((b) => b.textContent.includes("ビジョンを読む"));
    if (tab) tab.click();
    let tries = 0;
    const look = () => {
      const el = document.getElementById(id);
      if (visible(el)) {
        document.querySelectorAll(".vqa-plan-hit").forEach((e) => e.classList.remove("vqa-plan-hit"));
        el.classList.add("vqa-plan-hit");
        show(el);
      } else if (tries++ < 200) {
        requestAnimationFrame(look);
      }
    };
    look();
  };

  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a.vqa-ref, a.vqa-plan-link");
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const id = link.getAttribute("href").slice(1);
    if (link.classList.contains("vqa-plan-link")) {
      openPlan(id);
      return;
    }
    let card = document.getElementById(id);
    if (!visible(card)) {  // wide screens: the side panel shows each answer's 出典
      const m = id.match(/^vqa-m(\d+)-c(\d+)$/);
      if (!m) return;
      document.querySelectorAll("section.vqa-src").forEach((s) => { s.hidden = s.id !== `vqa-s${m[1]}`; });
      card = document.getElementById(`vqa-s${m[1]}-c${m[2]}`);
    }
    if (card) {
      document.querySelectorAll(".vqa-citation.vqa-hit").forEach((e) => e.classList.remove("vqa-hit"));
      card.classList.add("vqa-hit");
      show(card);
    }
  }, true);

  // A copied quote is the quote: readings and screen-reader words are left out.
  document.addEventListener("copy", (event) => {
    const selection = document.getSelection();
    if (!selection || selection.rangeCount === 0) return;
    const box = document.createElement("div");
    for (let i = 0; i < selection.rangeCount; i++) box.appendChild(selection.getRangeAt(i).cloneContents());
    const extra = box.querySelectorAll("rt, rp, .vqa-sr");
    if (extra.length === 0) return;
    extra.forEach((e) => e.remove());
    event.clipboardData.setData("text/plain", box.textContent);
    event.preventDefault();
  });
})();
