% rebase('layout', title='出错 Error %d' % status)
<p class="problem" id="problem">{{message}}</p>
<p><a href="/">返回 Back</a></p>
