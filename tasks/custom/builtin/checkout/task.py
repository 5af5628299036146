"""A small shop: fill a cart, enter shipping details over several pages, place the order.

The cart and the form values live in the browser (localStorage) while the
agent moves between the shop, cart, shipping and review pages. The order the
review page places goes to this task through `safebrowseCall("order", ...)`,
and `judge` compares it line by line with the order drawn from the seed.
"""

from __future__ import annotations

import random
from typing import Any

import playwright.sync_api as pw

from tasks.custom import CustomTask, Verdict, normalise
from tasks.custom.words import CITIES, STREETS, person

PRODUCTS = (
    ("Blue Mug", 9.50), ("Green Notebook", 4.25), ("Desk Lamp", 32.00), ("USB Cable", 6.99),
    ("Wool Socks", 12.00), ("Water Bottle", 15.40), ("Pencil Set", 3.80), ("Phone Stand", 11.25),
    ("Tea Sampler", 18.90), ("Canvas Bag", 8.60), ("Sticky Notes", 2.95), ("Wall Clock", 27.50),
)
LOOKALIKES = {"Blue Mug": "Blue Mug XL", "Desk Lamp": "Desk Lamp Mini", "Wool Socks": "Wool Socks (3 pack)",
              "Tea Sampler": "Tea Sampler Gift Box"}
STORES = ("Harbour Street", "Central Station", "Old Market", "Riverside Mall")
SHIPPING = {"standard": ("Standard delivery (3-5 days)", 4.90), "express": ("Express delivery (next day)", 12.90),
            "pickup": ("Pick up in store", 0.0)}


class Checkout(CustomTask):
    name = "checkout"
    description = "Buy the requested items through a shop, cart, shipping form and review page."
    variants = ("standard", "express", "pickup")
    hints = (
        "Add each requested product from the shop page, then open the cart to check names and quantities.",
        "Product names can look alike; match the full name from the goal.",
        "In the cart you can change a quantity and press Update, or remove lines you did not ask for.",
        "Fill the shipping form completely, choose the delivery method from the goal, continue to review, "
        "then place the order.",
    )

    def build(self, rng: random.Random) -> None:
        size = {"easy": 4, "medium": 8, "hard": 12}[self.difficulty]
        lines = {"easy": 1, "medium": 2, "hard": 3}[self.difficulty]
        chosen = rng.sample(PRODUCTS, size)
        catalog = list(chosen)
        if self.difficulty == "hard":
            for product_name, price in chosen:
                if product_name in LOOKALIKES:
                    catalog.append((LOOKALIKES[product_name], round(price * 1.4, 2)))
        rng.shuffle(catalog)
        self.catalog = [{"id": f"p{i + 1}", "name": n, "price": p} for i, (n, p) in enumerate(catalog)]
        by_name = {p["name"]: p for p in self.catalog}
        wanted_names = rng.sample([n for n, _ in chosen], lines)
        self.wanted = {by_name[n]["id"]: (1 if self.difficulty == "easy" else rng.randint(1, 3)) for n in wanted_names}
        others = [p["id"] for p in self.catalog if p["id"] not in self.wanted]
        self.initial_cart = {rng.choice(others): 1} if self.difficulty == "hard" else {}
        first, last = person(rng)
        self.address = {
            "name": f"{first} {last}",
            "street": f"{rng.randint(1, 200)} {rng.choice(STREETS)} Street",
            "city": rng.choice(CITIES),
        }
        if self.difficulty == "hard":
            self.address["postcode"] = f"{rng.randint(1000, 9999)}-{rng.randint(100, 999)}"
        self.store = rng.choice(STORES) if self.variant == "pickup" else None
        self.orders: list[dict[str, Any]] = []
        self.cart_seen: dict[str, int] = dict(self.initial_cart)

    def _product(self, product_id: str) -> dict[str, Any]:
        return next(p for p in self.catalog if p["id"] == product_id)

    def goal(self) -> str:
        items = " and ".join(f'{qty} x "{self._product(pid)["name"]}"' for pid, qty in self.wanted.items())
        text = f"Buy exactly {items}."
        if self.initial_cart:
            text += " Nothing else may be in the order."
        if self.variant == "pickup":
            name = self.address["name"]
            text += f' Choose in-store pickup at the "{self.store}" store, with the name "{name}" on the order.'
        else:
            where = f'{self.address["name"]}, {self.address["street"]}, {self.address["city"]}'
            if "postcode" in self.address:
                where += f', postcode {self.address["postcode"]}'
            text += f" Ship it by {self.variant} delivery to: {where}."
        return text + " Then place the order."

    def page_data(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog,
            "initialCart": self.initial_cart,
            "shipping": [{"id": k, "label": v[0], "price": v[1]} for k, v in SHIPPING.items()],
            "stores": list(STORES),
            "postcode": self.difficulty == "hard",
        }

    def handle(self, call: str, data: dict[str, Any]) -> Any:
        if call == "cart":
            cart = data.get("items")
            if isinstance(cart, dict):
                self.cart_seen = _quantities(cart)
            return {"ok": True}
        if call == "order":
            self.orders.append(data)
            items = _quantities(data.get("items") if isinstance(data.get("items"), dict) else {})
            known = {p["id"] for p in self.catalog}
            total = sum(self._product(pid)["price"] * qty for pid, qty in items.items() if pid in known)
            total += SHIPPING.get(str(data.get("shipping")), ("", 0.0))[1]
            return {"ok": True, "order": f"NW-{100000 + len(self.orders) * 7 + self.seed % 1000}",
                    "total": round(total, 2)}
        return {"ok": False, "error": "Unknown request."}

    def _order_problem(self, order: dict[str, Any]) -> str | None:
        items = order.get("items")
        if not isinstance(items, dict) or _quantities(items) != self.wanted:
            return "ordered items differ from the requested ones"
        if order.get("shipping") != self.variant:
            return "wrong delivery method"
        address = order.get("address") if isinstance(order.get("address"), dict) else {}
        if normalise(address.get("name", "")) != normalise(self.address["name"]):
            return "wrong name on the order"
        if self.variant == "pickup":
            return None if order.get("store") == self.store else "wrong pickup store"
        for key, expected in self.address.items():
            if normalise(address.get(key, "")) != normalise(expected):
                return f"wrong {key} in the shipping address"
        return None

    def judge(self, page: pw.Page, chat_messages: list[dict[str, Any]]) -> Verdict:
        if not self.orders:
            return Verdict.pending()
        problem = self._order_problem(self.orders[0])
        return Verdict.failure(problem) if problem else Verdict.success("order placed as requested")

    def partial_progress(self, page: pw.Page) -> float:
        wanted_ok = sum(1 for pid, qty in self.wanted.items() if self.cart_seen.get(pid) == qty)
        extra = sum(1 for pid in self.cart_seen if pid not in self.wanted and self.cart_seen[pid] > 0)
        score = 0.6 * max(0, wanted_ok - extra) / len(self.wanted)
        if page.url.startswith(self.url("shipping.html")):
            score += 0.1
        elif page.url.startswith(self.url("review.html")):
            score += 0.2
        return min(score, 0.9)


def _quantities(items: dict[Any, Any]) -> dict[str, int]:
    """Positive whole quantities by product id; anything else is dropped."""
    result: dict[str, int] = {}
    for key, value in items.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and int(value) == value and value > 0:
            result[str(key)] = int(value)
    return result
