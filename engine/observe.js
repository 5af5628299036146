// One pass over the page: give every element a stable `bid` attribute and
// describe the rendered ones an agent may care about. Runs in the page's main
// world, so it reads only what the page already shows; it never reads values
// of fields marked secret (they are masked here, before leaving the page).
([bidAttr, maxElements, attrAllow, secretSelector, firstBid, readWhileLoading]) => {
    // A document still parsing is read again once it has been parsed (unless told not to wait).
    if (document.readyState === "loading" && !readWhileLoading) return {loading: true};
    // A new document continues the episode's numbering, so an id seen on an
    // earlier page never names an element of a later one.
    if (typeof window.__safebrowse_next_bid !== "number") {
        window.__safebrowse_next_bid = firstBid;
    }
    const INTERACTIVE_TAGS = new Set(["a", "button", "input", "select", "textarea", "option",
        "label", "summary", "details", "canvas", "svg", "img"]);
    const SKIP_TAGS = new Set(["script", "style", "noscript", "template", "meta", "link",
        "head", "title", "base"]);
    const IMPLICIT_ROLES = {
        a: "link", button: "button", select: "combobox", textarea: "textbox", option: "option",
        ul: "list", ol: "list", li: "listitem", table: "table", tr: "row", td: "cell",
        th: "columnheader", h1: "heading", h2: "heading", h3: "heading", h4: "heading",
        h5: "heading", h6: "heading", img: "img", form: "form", nav: "navigation",
        dialog: "dialog", label: "label", p: "paragraph", summary: "button",
    };
    const INPUT_ROLES = {
        checkbox: "checkbox", radio: "radio", button: "button", submit: "button",
        reset: "button", range: "slider", number: "spinbutton", search: "searchbox",
    };
    const secret = new Set();
    if (secretSelector) {
        try { document.querySelectorAll(secretSelector).forEach(e => secret.add(e)); } catch (e) {}
    }
    const isSecret = (el) => secret.has(el) ||
        (el.tagName === "INPUT" && (el.type || "").toLowerCase() === "password");

    const all = [];
    const walk = (root) => {
        for (const el of root.querySelectorAll("*")) {
            all.push(el);
            if (el.shadowRoot) walk(el.shadowRoot);
        }
    };
    walk(document);

    const seen = new Set();
    const secretIds = [];
    // Every id in document order, hashed: the DOM-snapshot index is reused only while it is unchanged.
    let digest = 0;
    const out = [];
    let truncated = false;
    const vw = window.innerWidth, vh = window.innerHeight;
    for (const el of all) {
        const tag = el.tagName.toLowerCase();
        if (SKIP_TAGS.has(tag)) continue;
        let bid = el.getAttribute(bidAttr);
        if (bid === null || seen.has(bid) || !/^[0-9]{1,7}$/.test(bid)) {
            bid = String(window.__safebrowse_next_bid++);
            el.setAttribute(bidAttr, bid);
        }
        seen.add(bid);
        // Every secret field is reported, shown or not: the accessibility tree may still show
        // one this pass leaves out (transparent, zero-sized, past the element limit).
        if (isSecret(el)) secretIds.push(bid);
        for (let i = 0; i < bid.length; i++) digest = (Math.imul(digest, 31) + bid.charCodeAt(i)) | 0;
        digest = (Math.imul(digest, 31) + 44) | 0;  // a separator, so "1","23" differs from "12","3"
        if (out.length >= maxElements) { truncated = true; continue; }

        // Rendered at all? Hidden elements are never described.
        if (tag === "input" && (el.type || "").toLowerCase() === "hidden") continue;
        if (el.closest("[aria-hidden='true']")) continue;
        const style = window.getComputedStyle(el);
        if (style.display === "none" || style.visibility === "hidden" || style.visibility === "collapse") continue;
        if (parseFloat(style.opacity) === 0) continue;
        const rect = el.getBoundingClientRect();
        const rendered = rect.width > 0 && rect.height > 0;
        if (!rendered && tag !== "option") continue;
        if (tag === "option") {
            const sel = el.closest("select");
            if (!sel) continue;
        }

        // Interesting: interactive, or carrying text of its own.
        let ownText = "";
        for (const child of el.childNodes) {
            if (child.nodeType === Node.TEXT_NODE) ownText += child.textContent;
        }
        ownText = ownText.replace(/\s+/g, " ").trim();
        const interactive = INTERACTIVE_TAGS.has(tag) || el.hasAttribute("onclick") ||
            el.hasAttribute("role") || el.hasAttribute("tabindex") || el.isContentEditable ||
            style.cursor === "pointer";
        if (!interactive && !ownText) continue;

        let text = ownText;
        if (!text && interactive && ["a", "button", "label", "summary", "option"].includes(tag)) {
            text = (el.innerText || el.textContent || "").replace(/\s+/g, " ").trim();
        }
        if (text.length > 200) text = text.slice(0, 197) + "...";

        const type = tag === "input" ? (el.type || "text").toLowerCase() : null;
        let role = el.getAttribute("role");
        if (!role) {
            if (tag === "input") role = INPUT_ROLES[type] || "textbox";
            else role = IMPLICIT_ROLES[tag] || "generic";
        }
        const attrs = {};
        for (const name of attrAllow) {
            if (name === "value") continue;
            const v = el.getAttribute(name);
            if (v !== null && v !== "") attrs[name] = v.length > 200 ? v.slice(0, 197) + "..." : v;
        }
        if (typeof el.value === "string" && ["input", "textarea", "select"].includes(tag)) {
            const v = el.value;
            attrs.value = isSecret(el) ? (v ? "********" : "") : (v.length > 500 ? v.slice(0, 497) + "..." : v);
        }
        if (typeof el.checked === "boolean" && (type === "checkbox" || type === "radio")) {
            attrs.checked = el.checked ? "true" : "false";
        }
        if (tag === "option") attrs.selected = el.selected ? "true" : "false";
        const inViewport = rendered && rect.bottom > 0 && rect.right > 0 && rect.top < vh && rect.left < vw;
        out.push({
            id: bid,
            role: role,
            tag: tag,
            type: type,
            text: text,
            bbox: [Math.round(rect.x), Math.round(rect.y), Math.round(rect.width), Math.round(rect.height)],
            visible: inViewport,
            enabled: !(el.disabled === true || el.getAttribute("aria-disabled") === "true"),
            attributes: attrs,
            secret: isSecret(el),
        });
    }
    let active = document.activeElement;
    while (active && active.shadowRoot && active.shadowRoot.activeElement) active = active.shadowRoot.activeElement;
    const focused = active && active !== document.body ? active.getAttribute(bidAttr) : null;
    // timeOrigin tells documents apart without drawing from the page's (seeded) Math.random;
    // with the digest, it says whether the ids the DOM carries can have changed.
    return {elements: out, focused: focused, truncated: truncated, title: document.title, secretIds: secretIds,
            nextBid: window.__safebrowse_next_bid, state: String(performance.timeOrigin) + ":" + digest};
}
