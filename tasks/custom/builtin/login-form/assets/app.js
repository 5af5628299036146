// Field checks run here; whether the credentials are right is decided by the
// task on the server, through window.safebrowseCall.
(function () {
  const task = window.TASK || {};
  const $ = (id) => document.getElementById(id);
  const byEmail = task.field === "email";
  const fieldName = byEmail ? "Email address" : "Username";
  $("login-label").textContent = fieldName;
  $("signup-login-label").textContent = fieldName;
  if (byEmail) { $("login").type = "email"; $("signup-login").type = "email"; }

  if (task.workspaces && task.workspaces.length) {
    $("workspace-row").classList.remove("hidden");
    for (const name of task.workspaces) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      $("workspace").appendChild(option);
    }
  }
  if (task.remember) $("remember-row").classList.remove("hidden");
  if (task.signup) $("signup-card").classList.remove("hidden");

  function showError(id, message) {
    const el = $(id);
    el.textContent = message || "";
    el.classList.toggle("hidden", !message);
  }

  function checkLogin(value) {
    if (!value.trim()) return byEmail ? "Enter your email address." : "Enter your username.";
    if (byEmail && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value.trim())) return "Enter a valid email address, like name@example.org.";
    return "";
  }

  function checkPassword(value) {
    if (!value) return "Enter your password.";
    if (value.length < 8) return "Password must be at least 8 characters.";
    return "";
  }

  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const login = $("login").value;
    const password = $("password").value;
    const workspace = $("workspace").value;
    const loginError = checkLogin(login);
    const passwordError = checkPassword(password);
    const workspaceError = task.workspaces && task.workspaces.length && !workspace ? "Choose a workspace." : "";
    showError("login-error", loginError);
    showError("password-error", passwordError);
    showError("workspace-error", workspaceError);
    showError("form-error", "");
    if (loginError || passwordError || workspaceError) return;
    const answer = await window.safebrowseCall("login", {
      login: login.trim(), password: password, workspace: workspace, remember: $("remember").checked,
    });
    if (answer && answer.ok) {
      $("signin-card").classList.add("hidden");
      $("signup-card").classList.add("hidden");
      $("welcome-text").textContent = "You are signed in as " + answer.name + ".";
      $("welcome-card").classList.remove("hidden");
    } else {
      showError("form-error", (answer && answer.error) || "Sign-in failed.");
      $("password").value = "";
    }
  });

  $("signup").addEventListener("submit", async (event) => {
    event.preventDefault();
    const login = $("signup-login").value;
    const error = checkLogin(login) || checkPassword($("signup-password").value);
    showError("signup-error", error);
    if (error) return;
    const answer = await window.safebrowseCall("signup", { login: login.trim() });
    const notice = $("signup-notice");
    notice.textContent = (answer && answer.message) || "";
    notice.classList.remove("hidden");
  });
})();
