% rebase('layout', title='扫码点 Scan points')
<nav class="menu">
% if may['check']:
  <a href="/check/pre" id="go-pre">充装前检查<br><small>Pre-fill check</small></a>
  <a href="/check/post" id="go-post">充装后检查<br><small>Post-fill check</small></a>
% end
% if may['bind']:
  <a href="/bind" id="go-bind">标签绑定<br><small>Tag binding</small></a>
% end
% if may['dispatch']:
  <a href="/dispatch" id="go-dispatch">出站配送<br><small>Dispatch</small></a>
% end
% if not any(may.values()):
  <p>您的角色没有可用的扫码点 / your role has no scan point here.</p>
% end
</nav>
