% rebase('layout', title='登录 Log in')
% if message:
<p class="problem" id="problem">{{message}}</p>
% end
<form method="post" action="/login" id="login">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>工号 Staff id <input name="staff_id" id="staff_id" autocomplete="username" required maxlength="40" autocapitalize="off"></label>
  <label>密码 PIN <input name="secret" id="secret" type="password" autocomplete="current-password" required maxlength="128"></label>
  <button id="submit">登录 Log in</button>
</form>
