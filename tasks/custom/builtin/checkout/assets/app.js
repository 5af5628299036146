// Shop state lives in localStorage while the agent moves between pages; the
// final order is sent to the task with window.safebrowseCall("order", ...).
(function () {
  const task = window.TASK || {};
  const $ = (id) => document.getElementById(id);
  const money = (n) => "€" + n.toFixed(2);
  const product = (id) => (task.catalog || []).find((p) => p.id === id);

  function load(key, fallback) {
    try { const v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); }
    catch (e) { return fallback; }
  }
  function save(key, value) { localStorage.setItem(key, JSON.stringify(value)); }

  if (localStorage.getItem("checkout.cart") === null) save("checkout.cart", task.initialCart || {});
  const cart = () => load("checkout.cart", {});
  function setCart(items) {
    save("checkout.cart", items);
    if (window.safebrowseCall) window.safebrowseCall("cart", { items: items });
    renderCount();
  }
  function cartCount() { return Object.values(cart()).reduce((a, b) => a + b, 0); }
  function renderCount() { const c = $("cart-count"); if (c) c.textContent = "Cart (" + cartCount() + ")"; }
  function subtotal() {
    return Object.entries(cart()).reduce((sum, [id, qty]) => sum + (product(id) ? product(id).price * qty : 0), 0);
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function shopPage() {
    const list = $("products");
    for (const p of task.catalog) {
      const card = el("div", { class: "card row" });
      card.appendChild(el("h3", { style: "margin:0;min-width:220px" }, p.name));
      card.appendChild(el("span", {}, money(p.price)));
      const add = el("button", { type: "button", "aria-label": "Add " + p.name + " to cart", id: "add-" + p.id }, "Add to cart");
      add.addEventListener("click", () => {
        const items = cart();
        items[p.id] = (items[p.id] || 0) + 1;
        setCart(items);
        $("status").textContent = "Added " + p.name + " to the cart.";
      });
      card.appendChild(add);
      list.appendChild(card);
    }
  }

  function cartPage() {
    const body = $("cart-lines");
    body.innerHTML = "";
    const items = cart();
    const ids = Object.keys(items).filter((id) => product(id) && items[id] > 0);
    $("empty").classList.toggle("hidden", ids.length > 0);
    $("to-shipping").classList.toggle("hidden", ids.length === 0);
    for (const id of ids) {
      const p = product(id);
      const row = el("tr");
      row.appendChild(el("td", {}, p.name));
      row.appendChild(el("td", {}, money(p.price)));
      const cell = el("td");
      const qty = el("input", { type: "number", min: "0", max: "20", id: "qty-" + id, "aria-label": "Quantity of " + p.name });
      qty.value = String(items[id]);
      cell.appendChild(qty);
      const update = el("button", { type: "button", class: "secondary", "aria-label": "Update quantity of " + p.name }, "Update");
      update.addEventListener("click", () => {
        const n = parseInt(qty.value, 10);
        if (!(n >= 0 && n <= 20)) { $("cart-error").textContent = "Quantity must be a number from 0 to 20."; return; }
        $("cart-error").textContent = "";
        const next = cart();
        if (n === 0) delete next[id]; else next[id] = n;
        setCart(next);
        cartPage();
      });
      cell.appendChild(update);
      row.appendChild(cell);
      const remove = el("button", { type: "button", class: "danger", "aria-label": "Remove " + p.name }, "Remove");
      remove.addEventListener("click", () => { const next = cart(); delete next[id]; setCart(next); cartPage(); });
      const removeCell = el("td");
      removeCell.appendChild(remove);
      row.appendChild(removeCell);
      body.appendChild(row);
    }
    $("subtotal").textContent = "Subtotal: " + money(subtotal());
  }

  function shippingPage() {
    const saved = load("checkout.shipping", {});
    const methods = $("methods");
    for (const m of task.shipping) {
      const label = el("label", { class: "inline" });
      const radio = el("input", { type: "radio", name: "method", id: "method-" + m.id, value: m.id });
      if (saved.method === m.id) radio.checked = true;
      radio.addEventListener("change", togglePickup);
      label.appendChild(radio);
      label.appendChild(document.createTextNode(" " + m.label + " (" + money(m.price) + ")"));
      methods.appendChild(label);
      methods.appendChild(el("br"));
    }
    for (const s of task.stores) $("store").appendChild(el("option", { value: s }, s));
    if (!task.postcode) $("postcode-row").classList.add("hidden");
    for (const key of ["name", "street", "city", "postcode"]) if (saved[key]) $("ship-" + key).value = saved[key];
    if (saved.store) $("store").value = saved.store;
    function method() { const r = document.querySelector("input[name=method]:checked"); return r ? r.value : ""; }
    function togglePickup() {
      const pickup = method() === "pickup";
      $("address-rows").classList.toggle("hidden", pickup);
      $("store-row").classList.toggle("hidden", !pickup);
    }
    togglePickup();
    $("shipping-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const values = { method: method(), store: $("store").value };
      for (const key of ["name", "street", "city", "postcode"]) values[key] = $("ship-" + key).value.trim();
      const errors = [];
      if (!values.method) errors.push("Choose a delivery method.");
      if (!values.name) errors.push("Enter the full name.");
      if (values.method === "pickup") {
        if (!values.store) errors.push("Choose a store for pickup.");
      } else {
        if (!values.street) errors.push("Enter the street address.");
        if (!values.city) errors.push("Enter the city.");
        if (task.postcode && !/^\d{4}-\d{3}$/.test(values.postcode)) errors.push("Enter the postcode as 1234-567.");
      }
      $("shipping-errors").textContent = errors.join(" ");
      if (errors.length) return;
      save("checkout.shipping", values);
      location.href = "review.html";
    });
  }

  function reviewPage() {
    const shipping = load("checkout.shipping", null);
    const items = cart();
    const ids = Object.keys(items).filter((id) => product(id) && items[id] > 0);
    if (!shipping || !ids.length) {
      $("review").classList.add("hidden");
      $("incomplete").classList.remove("hidden");
      return;
    }
    const body = $("review-lines");
    for (const id of ids) {
      const row = el("tr");
      row.appendChild(el("td", {}, product(id).name));
      row.appendChild(el("td", {}, "x " + items[id]));
      row.appendChild(el("td", {}, money(product(id).price * items[id])));
      body.appendChild(row);
    }
    const method = task.shipping.find((m) => m.id === shipping.method);
    $("review-method").textContent = method ? method.label : "";
    $("review-address").textContent = shipping.method === "pickup"
      ? "Pickup at " + shipping.store + " for " + shipping.name
      : [shipping.name, shipping.street, shipping.city, shipping.postcode].filter(Boolean).join(", ");
    $("review-total").textContent = "Total: " + money(subtotal() + (method ? method.price : 0));
    const placed = load("checkout.placed", null);
    if (placed) return showPlaced(placed);
    $("place-order").addEventListener("click", async () => {
      $("place-order").disabled = true;
      const address = { name: shipping.name };
      if (shipping.method !== "pickup") {
        address.street = shipping.street; address.city = shipping.city;
        if (task.postcode) address.postcode = shipping.postcode;
      }
      const answer = await window.safebrowseCall("order", {
        items: cart(), shipping: shipping.method, address: address,
        store: shipping.method === "pickup" ? shipping.store : null,
      });
      if (answer && answer.ok) { save("checkout.placed", answer); showPlaced(answer); }
      else { $("place-order").disabled = false; $("order-error").textContent = (answer && answer.error) || "The order failed."; }
    });
  }

  function showPlaced(answer) {
    $("review-actions").classList.add("hidden");
    $("confirmation").textContent = "Thank you! Order " + answer.order + " is placed. Total charged: " + money(answer.total) + ".";
    $("confirmation").classList.remove("hidden");
  }

  renderCount();
  const page = document.body.dataset.page;
  ({ shop: shopPage, cart: cartPage, shipping: shippingPage, review: reviewPage })[page]();
})();
