// The sign-in the desk, the wallboard and the statistics page share: the form, and the token kept for the tab
// (sessionStorage "cti-token"). Each page passes its own api() (it sends the page's token) and what it does next.
const $ = (id) => document.getElementById(id);

export function signInWith(api, signedIn) {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      const session = await api("POST", "/api/session", { user: $("user").value, password: $("password").value });
      sessionStorage.setItem("cti-token", session.token);
      await signedIn(session.token);
    } catch (error) {
      $("signin-error").textContent = error.message;
      $("signin-error").title = error.raw || "";
    }
  });
}

// Revoke the token (if any), forget it, and show the form in place of the page.
export function signOutOf(api, token, page) {
  if (token) api("DELETE", "/api/session").catch(() => {});
  sessionStorage.removeItem("cti-token");
  $(page).hidden = true;
  $("signin").hidden = false;
}
